#include "compiler/ir/error.h"

namespace kiln {

Error::Error(std::string message, ErrorSite site)
    : std::runtime_error(format(message, site)), message_(std::move(message)), site_(std::move(site)) {}

Error Error::withFile(const std::string& file) const {
  ErrorSite site = site_;
  if (site.file.empty()) site.file = file;
  return Error(message_, site);
}

std::string Error::format(const std::string& message, const ErrorSite& site) {
  std::string out;
  if (!site.file.empty()) out += site.file + ": ";
  if (!site.node.empty() || !site.op.empty()) {
    out += "node '" + site.node + "'";
    if (!site.op.empty()) out += " (" + site.op + ")";
    out += ": ";
  }
  return out + message;
}

}  // namespace kiln
