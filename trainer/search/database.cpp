// Study URLs and the backend-neutral parts of database.h.
#include "trainer/search/database.h"

#include <cctype>
#include <cmath>

namespace kiln::train::search {

namespace {

constexpr const char* kForms =
    "expected a file path, sqlite:///PATH or postgresql://[USER@]HOST[:PORT]/DB?study=NAME";

[[noreturn]] void badUrl(const std::string& url, const std::string& why) {
  throw StudyError("bad study URL '" + url + "': " + why + " (" + kForms + ")");
}

bool startsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// Study names become a PostgreSQL schema name: kept to characters that need
// no quoting rules and well under the 63-byte identifier limit.
bool validStudyName(const std::string& name) {
  if (name.empty() || name.size() > 48) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

}  // namespace

StudyLocation parseStudyUrl(const std::string& url) {
  StudyLocation loc;
  loc.url = url;
  if (url.empty()) badUrl(url, "empty");
  if (startsWith(url, "postgresql://") || startsWith(url, "postgres://")) {
    loc.kind = StudyLocation::Kind::PostgreSQL;
    const size_t q = url.find('?');
    if (q == std::string::npos) badUrl(url, "no ?study=NAME");
    std::string kept;  // the other query parameters, for libpq
    const std::string query = url.substr(q + 1);
    size_t begin = 0;
    bool seen = false;
    while (begin <= query.size()) {
      size_t end = query.find('&', begin);
      if (end == std::string::npos) end = query.size();
      const std::string param = query.substr(begin, end - begin);
      if (startsWith(param, "study=")) {
        if (seen) badUrl(url, "study= given twice");
        seen = true;
        loc.study = param.substr(6);
        if (!validStudyName(loc.study))
          badUrl(url, "study name '" + loc.study + "' must be 1-48 letters, digits, '_' or '-'");
      } else if (!param.empty()) {
        kept += (kept.empty() ? "?" : "&") + param;
      }
      begin = end + 1;
    }
    if (!seen) badUrl(url, "no study=NAME parameter");
    const std::string authority = url.substr(0, q);
    const size_t path = authority.find('/', authority.find("://") + 3);
    if (path == std::string::npos || path + 1 == authority.size()) badUrl(url, "no database name (/DB)");
    loc.conninfo = authority + kept;
    return loc;
  }
  if (startsWith(url, "sqlite:")) {
    if (!startsWith(url, "sqlite:///") || url.size() == 10) badUrl(url, "a SQLite URL is sqlite:///PATH");
    loc.path = url.substr(10);
    return loc;
  }
  if (url.find("://") != std::string::npos) badUrl(url, "unknown scheme");
  loc.path = url;
  return loc;
}

int64_t SqlRow::integer(size_t i) const {
  const SqlValue& v = cols.at(i);
  if (const auto* n = std::get_if<int64_t>(&v)) return *n;
  if (const auto* d = std::get_if<double>(&v)) return static_cast<int64_t>(std::llround(*d));
  throw StudyError("column " + std::to_string(i) + " is not a number");
}

double SqlRow::real(size_t i) const {
  const SqlValue& v = cols.at(i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* n = std::get_if<int64_t>(&v)) return static_cast<double>(*n);
  throw StudyError("column " + std::to_string(i) + " is not a number");
}

std::string SqlRow::text(size_t i) const {
  const SqlValue& v = cols.at(i);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (null(i)) return "";
  throw StudyError("column " + std::to_string(i) + " is not text");
}

std::unique_ptr<Database> openDatabase(const StudyLocation& location, OpenMode mode) {
  return location.kind == StudyLocation::Kind::SQLite ? openSQLite(location, mode) : openPostgreSQL(location, mode);
}

}  // namespace kiln::train::search
