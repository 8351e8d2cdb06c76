// NumPy .npy reader/writer and the atomic file writer (see npy.h).
#include "tools/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace kiln {

static_assert(std::endian::native == std::endian::little, ".npy I/O copies little-endian data as is");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
// Header blocks are padded so the data starts 64-byte aligned, as numpy does.
constexpr size_t kHeaderAlignment = 64;

struct DescrEntry {
  std::string_view descr;
  DType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"<f4", DType::F32},
    {"<i8", DType::I64},
    {"<i4", DType::I32},
    {"|b1", DType::Bool},
};

[[noreturn]] void failFile(const std::string& file, const std::string& message) {
  throw Error(message, ErrorSite{file, "", ""});
}

// Parses the Python dict literal numpy writes as the header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  struct Header {
    std::string descr;
    bool fortranOrder = false;
    std::vector<int64_t> shape;
  };

  Header parse() {
    Header h;
    bool seenDescr = false, seenOrder = false, seenShape = false;
    expect('{');
    while (!tryConsume('}')) {
      std::string key = parseString();
      expect(':');
      auto once = [&](bool& seen) {
        if (seen) fail("key '" + key + "' appears twice");
        seen = true;
      };
      if (key == "descr") {
        once(seenDescr);
        h.descr = parseString();
      } else if (key == "fortran_order") {
        once(seenOrder);
        h.fortranOrder = parseBool();
      } else if (key == "shape") {
        once(seenShape);
        h.shape = parseShape();
      } else {
        fail("unexpected key '" + key + "'");
      }
      if (!tryConsume(',')) {
        expect('}');
        break;
      }
    }
    skipSpace();
    if (pos_ != text_.size()) fail("unexpected text after the header dictionary");
    if (!seenDescr || !seenOrder || !seenShape) fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    failFile(file_, "malformed .npy header: " + what + " (at offset " + std::to_string(pos_) + ")");
  }
  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  bool tryConsume(char c) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!tryConsume(c)) fail(std::string("expected '") + c + "'");
  }
  bool tryConsumeWord(std::string_view word) {
    skipSpace();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::string parseString() {
    skipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) fail("expected a quoted string");
    char quote = text_[pos_++];
    size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  bool parseBool() {
    if (tryConsumeWord("True")) return true;
    if (tryConsumeWord("False")) return false;
    fail("expected True or False");
  }
  std::vector<int64_t> parseShape() {
    std::vector<int64_t> dims;
    expect('(');
    while (!tryConsume(')')) {
      dims.push_back(parseDim());
      // Python 2 era files write long integers as "3L".
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
      if (!tryConsume(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
  int64_t parseDim() {
    skipSpace();
    bool negative = tryConsume('-');
    size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, text_[pos_] - '0', &value))
        fail("dimension does not fit 64 bits");
      ++pos_;
    }
    if (pos_ == start) fail("expected an integer dimension");
    if (negative) fail("negative dimension -" + std::to_string(value));
    return value;
  }

  std::string_view text_;
  const std::string& file_;
  size_t pos_ = 0;
};

uint32_t readLittleEndian(std::string_view bytes, size_t offset, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint32_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return v;
}

std::string headerText(const Tensor& t) {
  std::string descr;
  for (const DescrEntry& e : kDescrs)
    if (e.dtype == t.dtype()) descr = e.descr;
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().rank(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape()[i]);
  if (t.shape().rank() == 1) shape += ",";
  shape += ")";
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

}  // namespace

namespace npy {

Tensor parse(std::string_view bytes, const std::string& displayName) {
  auto fail = [&](const std::string& message) { failFile(displayName, message); };
  if (bytes.size() < kMagic.size() + 2 || bytes.substr(0, kMagic.size()) != kMagic)
    fail("not a .npy file (missing the \\x93NUMPY magic)");
  uint8_t major = static_cast<uint8_t>(bytes[6]);
  uint8_t minor = static_cast<uint8_t>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail("unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  size_t lengthWidth = major == 1 ? 2 : 4;
  size_t headerStart = 8 + lengthWidth;
  if (bytes.size() < headerStart) fail("truncated .npy header");
  size_t headerLength = readLittleEndian(bytes, 8, lengthWidth);
  if (bytes.size() - headerStart < headerLength)
    fail("truncated .npy header (declares " + std::to_string(headerLength) + " bytes, file has " +
         std::to_string(bytes.size() - headerStart) + ")");
  HeaderParser::Header header = HeaderParser(bytes.substr(headerStart, headerLength), displayName).parse();

  if (header.fortranOrder) fail("Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)");
  std::optional<DType> dtype;
  for (const DescrEntry& e : kDescrs)
    if (e.descr == header.descr) dtype = e.dtype;
  if (!dtype) {
    if (!header.descr.empty() && header.descr[0] == '>')
      fail("big-endian data ('" + header.descr + "') is not supported; convert it with arr.astype('<" +
           header.descr.substr(1) + "')");
    fail("unsupported dtype '" + header.descr + "' (supported: <f4, <i8, <i4, |b1)");
  }

  int64_t elements = 1;
  for (int64_t d : header.shape)
    if (__builtin_mul_overflow(elements, d, &elements)) fail("shape overflows a 64-bit element count");
  int64_t dataBytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<int64_t>(dtypeSize(*dtype)), &dataBytes))
    fail("shape overflows a 64-bit byte count");
  size_t dataStart = headerStart + headerLength;
  size_t available = bytes.size() - dataStart;
  if (static_cast<uint64_t>(dataBytes) != available)
    fail("data size mismatch: shape " + Shape(header.shape).str() + " of " + header.descr + " needs " +
         std::to_string(dataBytes) + " bytes, file has " + std::to_string(available));

  try {
    Tensor t(*dtype, Shape(header.shape));
    std::memcpy(t.rawData(), bytes.data() + dataStart, t.byteSize());
    if (*dtype == DType::Bool) {
      // Only 0 and 1 are valid bool objects; map any other byte to true.
      for (size_t i = 0; i < t.byteSize(); ++i) t.rawData()[i] = std::byte{t.rawData()[i] != std::byte{0}};
    }
    return t;
  } catch (const Error& e) {
    throw e.withFile(displayName);
  }
}

Tensor readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) failFile(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) failFile(path, "read error");
  return parse(contents.str(), path);
}

std::string encode(const Tensor& t) {
  std::string header = headerText(t);
  // Version 1.0 stores the header length in 16 bits; 2.0 in 32.
  uint8_t major = 1;
  size_t prefix = kMagic.size() + 2 + 2;
  if (prefix + header.size() + 1 + kHeaderAlignment > 0xffff) {
    major = 2;
    prefix += 2;
  }
  size_t padded = (prefix + header.size() + 1 + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  header.append(padded - prefix - header.size() - 1, ' ');
  header += '\n';

  std::string out(kMagic);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  out += header;
  out.append(reinterpret_cast<const char*>(t.rawData()), t.byteSize());
  return out;
}

void writeFile(const std::string& path, const Tensor& t) { writeFileAtomically(path, encode(t)); }

}  // namespace npy

void writeFileAtomically(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& what) { failFile(path, what + ": " + std::strerror(errno)); };
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  auto writeAll = [&](int fd) {
    for (size_t done = 0; done < bytes.size();) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno != EINTR) return false;
      if (n > 0) done += static_cast<size_t>(n);
    }
    return true;
  };

  // A path that exists as neither a regular file nor a folder (/dev/null,
  // /dev/stdout, a FIFO) is written through: renaming a temporary file over
  // it would replace the device node itself (as root) or fail on /dev.
  std::error_code ec;
  const fs::file_status status = fs::status(target, ec);
  if (!ec && fs::exists(status) && !fs::is_regular_file(status) && !fs::is_directory(status)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open");
    const bool written = writeAll(fd);
    if (::close(fd) != 0 || !written) fail("write failed");
    return;
  }

  // A unique hidden name next to the target: rename() is only atomic within
  // one file system.
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(getpid()) + "." +
                  std::to_string(counter++)))
              .string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt >= 100)) fail("cannot create a temporary file in " + dir.string());
  }

  auto discard = [&](const std::string& what) {
    int saved = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    errno = saved;
    fail(what);
  };
  if (!writeAll(fd)) discard("write failed");
  if (::fsync(fd) != 0) discard("fsync failed");
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) discard("close failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) discard("cannot rename the temporary file into place");
}

}  // namespace kiln
