import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Pinned tool sets for the slow suite (Node 20 compatible): React Native 0.76 and Expo SDK 52. */
export const TOOLSETS = {
  'react-native-0.76.9': [
    'react-native@0.76.9',
    '@react-native-community/cli@15.1.3',
    'react@18.3.1',
    '@react-native/metro-config@0.76.9',
    '@react-native/babel-preset@0.76.9',
  ],
  // expo's own dependencies named at the top level: npm nests them under expo/, where Metro's config does not look.
  'expo-52.0.49': [
    'expo@52.0.49',
    'react@18.3.1',
    'react-native@0.76.9',
    'expo-asset@11.0.5',
    'expo-constants@17.0.8',
    'expo-file-system@18.0.12',
    'expo-font@13.0.4',
    'expo-keep-awake@14.0.3',
  ],
} as const;

export const TOOLS_ROOT = process.env.AION_PREVIEW_TOOLS_DIR ?? join(homedir(), '.cache', 'aion-preview-tools');

/** Installs a tool set from the npm registry once, into `<root>/<name>/node_modules`, outside the repository; returns that folder. */
export function ensureTools(name: keyof typeof TOOLSETS): string {
  const dir = join(TOOLS_ROOT, name);
  const marker = join(dir, 'installed.json');
  if (!existsSync(marker)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `aion-preview-tools-${name}`, private: true }));
    const started = Date.now();
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '-E', ...TOOLSETS[name]], { cwd: dir, stdio: 'inherit', timeout: 900_000 });
    writeFileSync(marker, JSON.stringify({ packages: TOOLSETS[name], installed_at: new Date().toISOString(), install_seconds: (Date.now() - started) / 1000 }));
  }
  return join(dir, 'node_modules');
}

/** The slow suite runs in CI (CI=true), in the bench, or with AION_PREVIEW_SLOW=1; otherwise it says so and skips. */
export function slowSuiteEnabled(): boolean {
  return process.env.CI === 'true' || process.env.AION_PREVIEW_SLOW === '1';
}
