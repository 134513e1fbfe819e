// Sends through the real backtrace-node 1.x SDK (npm). argv: endpoint token.
// Prints the answer's status and object.
const bt = require('backtrace-node');
bt.initialize({
  endpoint: process.argv[2],
  token: process.argv[3],
  attributes: { 'odd name': 'y', sdk: 'node-legacy' },
  disableGlobalHandler: true,
  enableMetricsSupport: false,
});
bt.reportAsync(new Error('error from backtrace-node'))
  .then((result) => {
    console.log('sent ' + JSON.stringify({ status: result.status, object: result.object }));
    process.exit(0);
  })
  .catch((err) => {
    console.log('failed: ' + String(err));
    process.exit(1);
  });
