// StatusError: the one exception type inside the runtime. It carries the
// kiln_status the C API returns for it; the message names the file, tensor,
// dim or member involved. Never crosses the C API (see c_api.cpp).
#pragma once

#include <stdexcept>
#include <string>

#include "kiln/kiln.h"

namespace kiln::runtime {

class StatusError : public std::runtime_error {
 public:
  StatusError(kiln_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  kiln_status status() const { return status_; }

 private:
  kiln_status status_;
};

}  // namespace kiln::runtime
