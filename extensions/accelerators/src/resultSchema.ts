const text = { type: 'string', maxLength: 256 };
const amount = { type: 'number', minimum: 0 };

/** What a detector may answer; anything else is refused, so one broken detector cannot feed bad devices to placement. */
export const detectionResultSchema = {
  type: 'object',
  required: ['present', 'devices'],
  properties: {
    present: { type: 'boolean' },
    reason: { type: 'string', maxLength: 1000 },
    tool: { type: 'object', required: ['name'], properties: { name: text, version: text }, additionalProperties: false },
    devices: {
      type: 'array',
      maxItems: 256,
      items: {
        type: 'object',
        required: ['index', 'name'],
        properties: {
          index: { type: 'integer', minimum: 0, maximum: 65535 },
          name: { type: 'string', minLength: 1, maxLength: 256 },
          uuid: text,
          memoryTotalMiB: amount,
          memoryUsedMiB: amount,
          memoryFreeMiB: amount,
          utilizationPercent: { type: 'number', minimum: 0, maximum: 100 },
          temperatureC: { type: 'number', minimum: -273, maximum: 1000 },
          driverVersion: text,
          runtime: { type: 'object', required: ['name'], properties: { name: text, version: text }, additionalProperties: false },
          computeCapability: text,
          cores: { type: 'integer', minimum: 1 },
          architecture: text,
          features: { type: 'array', maxItems: 512, items: { type: 'string', maxLength: 64 } },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;
