// `netbird-mgmt inspect`: the inspector console (server/inspector_listener is its far end).
//   netbird-mgmt inspect [--datadir DIR] [--addr HOST:PORT] [--token-file F] [--json] [COMMAND]
// With a COMMAND it answers once (scripts: --json prints the server's JSON line as is); without,
// an interactive console (GNU readline: line editing, history, completion of commands, peer ids
// and names, account ids). `watch <command>` refreshes until Ctrl-C; `trace <peer>` prints the
// messages one peer actor handles as they happen, until Ctrl-C.
#pragma once

namespace nbm::server {

// argv[0] is "inspect". Returns the process's exit status (0 ok, 1 error, 2 usage).
int run_inspect(int argc, char** argv);

} // namespace nbm::server
