// Sends through the real @backtrace/node SDK (npm): a handled error and a message,
// with a string attachment and an attribute with an odd name. argv: submission URL.
// Prints the statuses and the first answer as JSON.
const { BacktraceClient, BacktraceStringAttachment } = require('@backtrace/node');
const client = BacktraceClient.initialize({
  url: process.argv[2],
  attachments: [new BacktraceStringAttachment('note.txt', 'hello from node')],
  userAttributes: { 'odd name': 'x', version: '2.0', sdk: 'node', application: 'sdk-test', 'application.version': '2.0' },
  database: { enable: false },
  metrics: { enable: false },
  breadcrumbs: { enable: false },
});
(async () => {
  const r1 = await client.send(new Error('handled error from node'));
  const r2 = await client.send('a message from node');
  console.log(JSON.stringify({ statuses: [r1.status, r2.status], answer: r1.result }));
  client.dispose();
  process.exit(0);
})();
