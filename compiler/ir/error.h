// kiln::Error: the one exception type the compiler throws on bad models or bad
// use. It carries where the problem is (file, node, op) so every tool can
// print "file: node 'n' (Op): what was expected" without re-deriving context.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln {

struct ErrorSite {
  std::string file;
  std::string node;  // node name, or "#index(OpType)" for unnamed nodes
  std::string op;
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorSite site = {});

  const std::string& message() const { return message_; }
  const ErrorSite& site() const { return site_; }

  // Returns a copy with the file filled in (if not set yet); used by loaders
  // that learn the file name only at the top level.
  Error withFile(const std::string& file) const;

 private:
  static std::string format(const std::string& message, const ErrorSite& site);
  std::string message_;
  ErrorSite site_;
};

}  // namespace kiln
