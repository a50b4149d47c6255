// Compares two compiled .proto descriptor sets (protoc --descriptor_set_out --include_imports) for
// wire compatibility: every message with the same field numbers, names, types, labels and type
// names; every enum with the same values; every service method with the same types and streaming.
// Prints each difference and exits 1 if there is any.
//
//   protoc -Iproto --include_imports --descriptor_set_out=/tmp/ours.pb proto/management.proto
//   protoc -I<dir of NetBird's file> --include_imports --descriptor_set_out=/tmp/theirs.pb
//   management.proto build/tools/proto_compat /tmp/ours.pb /tmp/theirs.pb
//     --alias
//     .management.DeviceAuthorizationFlow.provider=.management.DeviceAuthorizationFlow.ProviderType
// An alias maps one of their type names to ours: type names never travel on the wire.
#include <google/protobuf/descriptor.pb.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

using google::protobuf::DescriptorProto;
using google::protobuf::EnumDescriptorProto;
using google::protobuf::FileDescriptorSet;

namespace {

struct catalog {
  std::map<std::string, const DescriptorProto*> messages;
  std::map<std::string, const EnumDescriptorProto*> enums;
  std::map<std::string, std::string> methods; // name -> "in -> out, streaming"
};

void add_enum(catalog& c, const std::string& scope, const EnumDescriptorProto& e) {
  c.enums[scope + "." + e.name()] = &e;
}

void add_message(catalog& c, const std::string& scope, const DescriptorProto& m) {
  const std::string name = scope + "." + m.name();
  c.messages[name] = &m;
  for (const auto& nested : m.nested_type())
    add_message(c, name, nested);
  for (const auto& e : m.enum_type())
    add_enum(c, name, e);
}

catalog load(const char* path, int& status) {
  static std::map<std::string, FileDescriptorSet> keep;
  std::ifstream in(path, std::ios::binary);
  auto& set = keep[path];
  if (!in || !set.ParseFromIstream(&in)) {
    std::fprintf(stderr, "cannot read descriptor set %s\n", path);
    status = 2;
    return {};
  }
  catalog c;
  for (const auto& f : set.file()) {
    if (f.package() != "management")
      continue;
    for (const auto& m : f.message_type())
      add_message(c, "." + f.package(), m);
    for (const auto& e : f.enum_type())
      add_enum(c, "." + f.package(), e);
    for (const auto& s : f.service())
      for (const auto& m : s.method())
        c.methods[s.name() + "." + m.name()] = m.input_type() + " -> " + m.output_type() +
                                               (m.client_streaming() ? " client-stream" : "") +
                                               (m.server_streaming() ? " server-stream" : "");
  }
  return c;
}

std::string field_text(const google::protobuf::FieldDescriptorProto& f) {
  return f.name() + " type=" + std::to_string(f.type()) + " label=" + std::to_string(f.label()) +
         (f.type_name().empty() ? "" : " " + f.type_name()) +
         (f.has_oneof_index() ? " oneof#" + std::to_string(f.oneof_index()) : "");
}

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> alias;
  for (int i = 3; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--alias") {
      std::string a = argv[i + 1];
      auto eq = a.find('=');
      if (eq != std::string::npos)
        alias[a.substr(0, eq)] = a.substr(eq + 1);
    }
  if (argc < 3 || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: proto_compat OURS.pb THEIRS.pb [--alias THEIRS_TYPE=OURS_TYPE]...\n");
    return 2;
  }
  int status = 0;
  auto ours = load(argv[1], status);
  auto theirs = load(argv[2], status);
  if (status)
    return status;
  // Their names under our aliases.
  auto rename = [&](std::string s) {
    for (const auto& [from, to] : alias) {
      auto pos = s.find(from);
      if (pos != std::string::npos &&
          (pos + from.size() == s.size() || s[pos + from.size()] == ' '))
        s.replace(pos, from.size(), to);
    }
    return s;
  };
  for (auto* m : {&theirs.enums}) {
    for (const auto& [from, to] : alias)
      if (auto it = m->find(from); it != m->end()) {
        (*m)[to] = it->second;
        m->erase(it);
      }
  }
  int diffs = 0;
  auto diff = [&](const std::string& what) {
    ++diffs;
    std::printf("DIFF %s\n", what.c_str());
  };
  for (const auto& [name, sig] : theirs.methods)
    if (!ours.methods.count(name))
      diff("method " + name + " missing");
    else if (ours.methods[name] != sig)
      diff("method " + name + ": ours " + ours.methods[name] + ", theirs " + sig);
  for (const auto& [name, _] : ours.methods)
    if (!theirs.methods.count(name))
      diff("method " + name + " is ours only");
  for (const auto& [name, m] : theirs.messages) {
    auto it = ours.messages.find(name);
    if (it == ours.messages.end()) {
      diff("message " + name + " missing");
      continue;
    }
    std::map<int, std::string> a, b;
    for (const auto& f : m->field())
      b[f.number()] = rename(field_text(f));
    for (const auto& f : it->second->field())
      a[f.number()] = field_text(f);
    for (const auto& [num, text] : b)
      if (!a.count(num))
        diff(name + " field " + std::to_string(num) + " (" + text + ") missing");
      else if (a[num] != text)
        diff(name + " field " + std::to_string(num) + ": ours " + a[num] + ", theirs " + text);
    for (const auto& [num, text] : a)
      if (!b.count(num))
        diff(name + " field " + std::to_string(num) + " (" + text + ") is ours only");
  }
  for (const auto& [name, _] : ours.messages)
    if (!theirs.messages.count(name))
      diff("message " + name + " is ours only");
  for (const auto& [name, e] : theirs.enums) {
    auto it = ours.enums.find(name);
    if (it == ours.enums.end()) {
      diff("enum " + name + " missing");
      continue;
    }
    std::map<int, std::string> a, b;
    for (const auto& v : e->value())
      b[v.number()] = v.name();
    for (const auto& v : it->second->value())
      a[v.number()] = v.name();
    if (a != b)
      diff("enum " + name + " values differ");
  }
  std::printf("%zu messages, %zu enums, %zu methods compared; %d difference(s)\n",
              theirs.messages.size(), theirs.enums.size(), theirs.methods.size(), diffs);
  return diffs ? 1 : 0;
}
