/** The `aion.auth` configuration section, with the defaults from the manifest applied by the kernel. */
export interface BucketConfig {
  /** Sustained rate: tokens added per minute. */
  perMinute: number;
  /** Bucket size: the most requests that may arrive at once. */
  burst: number;
}

export interface WindowConfig {
  attempts: number;
  windowSeconds: number;
}

export interface AuthConfiguration {
  issuer: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  scryptCost: number;
  passwordMinLength: number;
  initialAdmin: { enabled: boolean; username: string };
  defaultUserScopes: string[];
  defaultDeviceScopes: string[];
  defaultApiKeyScopes: string[];
  /** Seconds a verified API key row is served from memory (0: read per request). */
  apiKeyCacheSeconds: number;
  auditRetentionDays: number;
  /** `interactive`: only a signed-in user may create a user holding `*` or `users:write`; `any`: API keys and devices may too. */
  adminCreation: 'interactive' | 'any';
  redisUrl?: string;
  revocations: { redisChannel: string };
  rateLimits: {
    enabled: boolean;
    redisKeyPrefix: string;
    perApiKey: BucketConfig;
    perPrincipal: BucketConfig;
    perIp: BucketConfig;
    login: { perAccount: WindowConfig; perIp: WindowConfig };
  };
}
