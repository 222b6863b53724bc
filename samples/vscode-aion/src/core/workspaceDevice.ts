/** The workspace as a device of the hub: the enabled read-only skills, served over the device connection. */
import { AionClient, type DeviceConnection, type DeviceLogger, type DeviceState } from '@aion/client';
import { WebSocket } from 'ws';
import { WorkspaceSkills, type WorkspaceSkillId } from './workspaceSkills.js';

export interface WorkspaceDeviceOptions {
  hubUrl: string;
  /** The device token from `aion devices add` (or the hub's `POST /v1/hub/devices`). */
  token: string;
  /** The device's name; the hub checks it against the token. */
  name: string;
  folder: string;
  skills: readonly WorkspaceSkillId[];
  logger?: DeviceLogger;
  onState?: (state: DeviceState) => void;
}

export function startWorkspaceDevice(options: WorkspaceDeviceOptions): { connection: DeviceConnection; skills: WorkspaceSkills } {
  const skills = new WorkspaceSkills(options.folder, options.skills);
  // The device authenticates with its own token, not the user's.
  const client = new AionClient({ baseUrl: options.hubUrl, accessToken: options.token });
  const connection = client.devices.connect({
    token: options.token,
    device: options.name,
    skills: () => skills.list(),
    logger: options.logger,
    createSocket: (url, headers) => new WebSocket(url, { headers, handshakeTimeout: 10_000 }),
    execute: async (call, signal) => ({ result: await skills.execute(call.skill, call.args, signal) }),
  });
  if (options.onState) connection.onState(options.onState);
  connection.start();
  return { connection, skills };
}

/** The status bar's words for the hub connection and the device. */
export function statusText(hubReachable: boolean, device: DeviceState | undefined): { text: string; tooltip: string } {
  if (!hubReachable) return { text: '$(debug-disconnect) Aion: offline', tooltip: 'The Aion hub does not answer' };
  if (device === 'online') return { text: '$(broadcast) Aion: connected', tooltip: 'Connected to the hub; this workspace is exposed as a device' };
  if (device === 'refused') return { text: '$(error) Aion: device refused', tooltip: 'The hub refused this device (see the output channel)' };
  if (device === 'connecting' || device === 'offline')
    return { text: '$(sync~spin) Aion: connecting', tooltip: 'Connecting this workspace to the hub as a device' };
  return { text: '$(check) Aion: connected', tooltip: 'Connected to the hub' };
}
