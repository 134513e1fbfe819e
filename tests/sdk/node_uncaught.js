// The real @backtrace/node SDK (npm) with its offline database. argv: submission
// URL, database directory, mode. `crash`: an uncaught exception ends the process
// (the SDK keeps the report in its database when it cannot send it); `resend`: a
// new process of the application, which sends what the database holds, then exits.
const { BacktraceClient } = require('@backtrace/node');
const [url, dir, mode] = process.argv.slice(2);
const client = BacktraceClient.initialize({
  url,
  userAttributes: { sdk: 'node-uncaught', application: 'sdk-test', 'application.version': '3.0' },
  database: { enable: true, path: dir, createDatabaseDirectory: true, autoSend: true, retryInterval: 500 },
  metrics: { enable: false },
  breadcrumbs: { enable: false },
});
if (mode === 'crash') {
  setTimeout(() => {
    throw new Error('uncaught error from node');
  }, 10);
} else {
  setTimeout(async () => {
    await client.database.flush();
    client.dispose();
    process.exit(0);
  }, 2000);
}
