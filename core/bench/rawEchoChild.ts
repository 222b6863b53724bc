// The baseline: the cheapest possible request/response over the same IPC channel.
process.on('message', (m) => process.send!(m));
