export { runTool, outputInvalid, DetectorErrorCodes, type ToolRun, type ToolRunOptions } from './tool.js';
export { notPresent, readNumber, defined, type AcceleratorDetector, type DetectedDevice, type DetectionResult } from './detection.js';
