// libprotobuf's own log lines, routed to this server's logs. libprotobuf prints an ERROR to stderr
// for every request whose strings are not valid UTF-8 (a client's input, answered with
// INVALID_ARGUMENT already): a client could flood the console that way. Routed here, such lines are
// debug lines of the "grpc" layer; protobuf's FATAL (a bug of ours) stays an error.
#pragma once

namespace nbm::server {

// Installs the route for the whole process (call once, after logging is set up).
void route_protobuf_logs();

} // namespace nbm::server
