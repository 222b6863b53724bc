import type { Skill } from './types.js';

export interface SearchHit {
  skill: Skill;
  score: number;
}

function tokens(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

/**
 * Ranks skills for a free-text query over id, title, description and tags. Every query word must
 * match somewhere (prefixes count); an exact id wins, then id and title words, then tags, then
 * the description. Without a query every skill matches, sorted by id.
 */
export function searchSkills(skills: Iterable<Skill>, query: string | undefined, tags: readonly string[] = []): SearchHit[] {
  const words = tokens(query ?? '');
  const wantedTags = tags.map((t) => t.toLowerCase());
  const hits: SearchHit[] = [];
  for (const skill of skills) {
    const skillTags = skill.tags.map((t) => t.toLowerCase());
    if (!wantedTags.every((t) => skillTags.includes(t))) continue;
    if (words.length === 0) {
      hits.push({ skill, score: 0 });
      continue;
    }
    const fields: Array<[string[], number]> = [
      [tokens(skill.id), 6],
      [tokens(skill.title), 5],
      [skillTags.flatMap(tokens), 4],
      [tokens(skill.description), 1.5],
    ];
    let score = 0;
    let all = true;
    for (const word of words) {
      let best = 0;
      for (const [fieldWords, weight] of fields) {
        for (const w of fieldWords) {
          const s = w === word ? weight : w.startsWith(word) ? weight * 0.6 : word.length >= 4 && w.includes(word) ? weight * 0.3 : 0;
          if (s > best) best = s;
        }
      }
      if (best === 0) all = false;
      score += best;
    }
    if (!all) continue;
    const q = (query ?? '').trim().toLowerCase();
    if (skill.id.toLowerCase() === q) score += 50;
    else if (skill.id.toLowerCase().startsWith(q)) score += 10;
    if (skill.title.toLowerCase() === q) score += 20;
    hits.push({ skill, score: Math.round(score * 100) / 100 });
  }
  return hits.sort((a, b) => b.score - a.score || a.skill.id.localeCompare(b.skill.id));
}
