/** DI identifiers for values that are not classes. */
export const TYPES = {
  KernelOptions: Symbol.for('aion.KernelOptions'),
  Logger: Symbol.for('aion.Logger'),
  /** Every capability's kernel half (`KernelChannel`), attached to each host. */
  KernelChannel: Symbol.for('aion.KernelChannel'),
} as const;
