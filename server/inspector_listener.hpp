// The inspector's own listener: a line protocol over TCP, loopback by default (--inspector-addr,
// NBM_INSPECTOR_ADDR or the config's InspectorAddress; "off" turns it off: server/cli.hpp). A
// connection first sends `auth <token>`; the token lives in <datadir>/inspector.token (created 0600
// on first start, never logged). Then each line is a question for the inspector actor
// (actors/inspector.hpp), each answer one JSON line; `trace <peer>` answers one JSON line, then one
// line per message the peer actor handles, as it handles it (none lost: the actor sends each one),
// until the client sends `stop` (answered with a summary line) or goes away (the actor forgets the
// tracer: it monitors it). The address actually bound is written to <datadir>/inspector.addr for
// `netbird-mgmt inspect`. One thread per connection (an operator's console: at most 8 at once); a
// connection that goes away in the middle of anything costs the server nothing but that thread's
// end.
#pragma once

#include "actors/inspector.hpp"

#include <atomic>
#include <memory>
#include <string>

namespace caf {
class actor_system;
}

namespace nbm::server {

// The token in `datadir`: read, or created (32 random bytes, hex, file mode 0600) when absent.
// Throws std::runtime_error when it cannot be read or created (the message names the file only).
std::string inspector_token(const std::string& datadir);

class inspector_listener {
public:
  inspector_listener(caf::actor_system& sys, actors::inspector_actor inspector, std::string token);
  ~inspector_listener(); // stops accepting and ends every connection
  inspector_listener(const inspector_listener&) = delete;
  inspector_listener& operator=(const inspector_listener&) = delete;
  // Listens on `address` ("127.0.0.1:33079", port 0: any); false (with `error`) if it cannot.
  bool start(const std::string& address, std::string& error);
  std::string bound() const; // "127.0.0.1:PORT" once started

  struct impl;

private:
  std::shared_ptr<impl> p_;
};

} // namespace nbm::server
