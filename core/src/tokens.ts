/** DI identifiers for values that are not classes. */
export const TYPES = {
  KernelOptions: Symbol.for('aion.KernelOptions'),
  Logger: Symbol.for('aion.Logger'),
} as const;
