export { writeTinyLlamaGguf, type TinyLlamaOptions } from './testing/ggufWriter.js';
