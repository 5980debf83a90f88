#include "sandbox/seccomp_policy.h"

#include <fcntl.h>
#include <seccomp.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <map>
#include <optional>

#include "base/fd.h"
#include "sandbox/seccomp_constants.h"
#include "sandbox/seccomp_lowering.h"

namespace crosvm::sandbox {

namespace fs = std::filesystem;
using base::Error;
using base::Result;
using base::Status;

namespace {

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

struct Token {
  enum class Kind { kWord, kOp };
  Kind kind;
  std::string text;
};

// Words ([A-Za-z0-9_]+) and the operators of the expression language; whitespace separates.
Result<std::vector<Token>> Tokenize(std::string_view s) {
  static constexpr std::string_view kOps[] = {
      "||", "&&", "==", "!=", "<=", ">=", "<", ">", "&", "|"};
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
    } else if (IsWordChar(c)) {
      size_t j = i;
      while (j < s.size() && IsWordChar(s[j])) ++j;
      tokens.push_back({Token::Kind::kWord, std::string(s.substr(i, j - i))});
      i = j;
    } else {
      bool matched = false;
      for (std::string_view op : kOps) {
        if (s.substr(i, op.size()) == op) {
          tokens.push_back({Token::Kind::kOp, std::string(op)});
          i += op.size();
          matched = true;
          break;
        }
      }
      if (!matched) return Error(std::string("unexpected character '") + c + "'");
    }
  }
  return tokens;
}

// Decimal, 0x hex or 0-prefixed octal, all 64 bits.
Result<uint64_t> ParseNumber(const std::string& text) {
  int base = 10;
  size_t start = 0;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    start = 2;
  } else if (text.size() > 1 && text[0] == '0') {
    base = 8;
    start = 1;
  }
  uint64_t value = 0;
  for (size_t i = start; i < text.size(); ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 99;
    if (digit >= base) return Error("bad number '" + text + "'");
    if (value > (~uint64_t{0} - digit) / base) return Error("number '" + text + "' overflows");
    value = value * base + digit;
  }
  return value;
}

// Walks the tokens of one expression or `return` value.
class TokenReader {
 public:
  explicit TokenReader(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}
  bool done() const { return pos_ >= tokens_.size(); }
  const Token* Peek() const { return done() ? nullptr : &tokens_[pos_]; }
  bool TakeOp(std::string_view op) {
    if (done() || tokens_[pos_].kind != Token::Kind::kOp || tokens_[pos_].text != op) {
      return false;
    }
    ++pos_;
    return true;
  }
  std::string Describe() const { return done() ? "end of line" : "'" + tokens_[pos_].text + "'"; }
  const Token& Next() { return tokens_[pos_++]; }

  // VALUE := TERM ('|' TERM)*; TERM := number | constant name.
  Result<uint64_t> ReadValue() {
    uint64_t value = 0;
    do {
      if (done() || Peek()->kind != Token::Kind::kWord) {
        return Error("expected a value, got " + Describe());
      }
      const std::string& word = Next().text;
      if (std::isdigit(static_cast<unsigned char>(word[0]))) {
        CROSVM_ASSIGN_OR_RETURN(uint64_t n, ParseNumber(word));
        value |= n;
      } else {
        std::optional<uint64_t> c = LookupSeccompConstant(word);
        if (!c) return Error("unknown constant '" + word + "'");
        value |= *c;
      }
    } while (TakeOp("|"));
    return value;
  }

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

Result<ArgComparison> ReadComparison(TokenReader& r) {
  const Token* t = r.Peek();
  if (!t || t->kind != Token::Kind::kWord || t->text.size() != 4 ||
      t->text.compare(0, 3, "arg") != 0 || t->text[3] < '0' || t->text[3] > '5') {
    return Error("expected arg0..arg5, got " + r.Describe());
  }
  ArgComparison c;
  c.arg = r.Next().text[3] - '0';
  static constexpr std::pair<std::string_view, ArgOp> kOps[] = {
      {"==", ArgOp::kEq}, {"!=", ArgOp::kNe}, {"<", ArgOp::kLt},     {"<=", ArgOp::kLe},
      {">", ArgOp::kGt},  {">=", ArgOp::kGe}, {"&", ArgOp::kAnyBit}, {"in", ArgOp::kIn}};
  t = r.Peek();
  bool found = false;
  for (const auto& [text, op] : kOps) {
    if (t && t->text == text && (t->kind == Token::Kind::kOp) == (text != "in")) {
      c.op = op;
      found = true;
      break;
    }
  }
  if (!found)
    return Error("expected a comparison operator after arg" + std::to_string(c.arg) + ", got " +
                 r.Describe());
  r.Next();
  CROSVM_ASSIGN_OR_RETURN(c.value, r.ReadValue());
  return c;
}

// EXPR := CONJ ('||' CONJ)*; CONJ := CMP ('&&' CMP)*.
Result<std::vector<ArgConjunction>> ParseCondition(std::string_view text) {
  CROSVM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
  TokenReader r(std::move(tokens));
  std::vector<ArgConjunction> condition(1);
  while (true) {
    CROSVM_ASSIGN_OR_RETURN(ArgComparison c, ReadComparison(r));
    condition.back().push_back(c);
    if (r.done()) break;
    if (r.TakeOp("&&")) continue;
    if (r.TakeOp("||")) {
      condition.emplace_back();
      continue;
    }
    return Error("expected && or || or end of line, got " + r.Describe());
  }
  return condition;
}

Result<int> ParseReturn(std::string_view text) {
  CROSVM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
  TokenReader r(std::move(tokens));
  CROSVM_ASSIGN_OR_RETURN(uint64_t value, r.ReadValue());
  if (!r.done()) return Error("unexpected " + r.Describe() + " after return value");
  // The kernel's SECCOMP_RET_DATA carries 16 bits, but errno values end at MAX_ERRNO (4095).
  if (value > 4095) return Error("errno " + std::to_string(value) + " is out of range 0..4095");
  return static_cast<int>(value);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  base::ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("cannot read " + path);
  std::string text;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("cannot read " + path);
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

std::string CanonicalOrSelf(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

}  // namespace

// Parses statements into one policy, following includes.
class PolicyParser {
 public:
  explicit PolicyParser(SeccompPolicy* policy) : policy_(policy) {}

  // `canonical` is empty for text that is not a file (ParseString).
  Status ParseText(std::string_view text, const std::string& name, const std::string& canonical,
                   const std::string& dir) {
    stack_.push_back(canonical);
    int line_no = 0;
    size_t pos = 0;
    Status status;
    while (pos <= text.size() && status.ok()) {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      ++line_no;
      std::string location = name + ":" + std::to_string(line_no);
      status = ParseLine(text.substr(pos, end - pos), location, dir);
      if (!status.ok()) {
        // The innermost file names the line; the files around it say where they included it.
        status = Error(located_ ? status.error().message() + " (included from " + location + ")"
                                : location + ": " + status.error().message());
        located_ = true;
      }
      pos = end + 1;
    }
    stack_.pop_back();
    return status;
  }

 private:
  Status ParseLine(std::string_view line, const std::string& location, const std::string& dir) {
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) return base::Ok();
    if (line[0] == '@') return ParseDirective(line, dir);

    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Error("expected 'syscall: action'");
    std::string name(Trim(line.substr(0, colon)));
    std::string_view action = Trim(line.substr(colon + 1));
    if (name.empty()) return Error("missing syscall name before ':'");
    for (char c : name) {
      if (!IsWordChar(c)) return Error("bad syscall name '" + name + "'");
    }
    int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_NATIVE, name.c_str());
    // Negative numbers are libseccomp's pseudo-syscalls: names that exist on other architectures.
    if (nr < 0) return Error("unknown syscall '" + name + "'");
    if (auto it = defined_at_.find(name); it != defined_at_.end()) {
      return Error("duplicate definition of syscall '" + name + "' (first at " + it->second + ")");
    }
    if (action.empty()) return Error("missing action after '" + name + ":'");

    PolicyRule rule;
    rule.syscall = name;
    rule.syscall_nr = nr;
    rule.location = location;
    if (action == "1") {
      rule.action = PolicyRule::Action::kAllow;
    } else if (action.substr(0, 6) == "return" &&
               (action.size() == 6 || action[6] == ' ' || action[6] == '\t')) {
      rule.action = PolicyRule::Action::kErrno;
      CROSVM_ASSIGN_OR_RETURN(rule.errno_value, ParseReturn(action.substr(6)));
    } else {
      rule.action = PolicyRule::Action::kAllowIf;
      CROSVM_ASSIGN_OR_RETURN(rule.condition, ParseCondition(action));
      // Conditions libseccomp cannot express are reported here, with the line, not at Compile.
      CROSVM_RETURN_IF_ERROR(LowerCondition(rule.condition));
    }
    defined_at_[name] = location;
    policy_->rules_.push_back(std::move(rule));
    return base::Ok();
  }

  Status ParseDirective(std::string_view line, const std::string& dir) {
    size_t space = line.find_first_of(" \t");
    std::string_view word = line.substr(0, space);
    std::string_view arg =
        space == std::string_view::npos ? std::string_view() : Trim(line.substr(space));
    if (word == "@frequency") {
      // Minijail's ordering hints; libseccomp orders the filter itself.
      if (arg.empty()) return Error("@frequency needs a path");
      return base::Ok();
    }
    if (word != "@include") return Error("unknown directive '" + std::string(word) + "'");
    if (arg.empty()) return Error("@include needs a path");
    return Include(std::string(arg), dir);
  }

  Status Include(const std::string& target, const std::string& dir) {
    fs::path path = fs::path(target).is_absolute() ? fs::path(target) : fs::path(dir) / target;
    std::string name = path.lexically_normal().string();
    if (static_cast<int>(stack_.size()) > SeccompPolicy::kMaxIncludeDepth) {
      return Error("@include nested deeper than " +
                   std::to_string(SeccompPolicy::kMaxIncludeDepth) + " levels");
    }
    std::string canonical = CanonicalOrSelf(name);
    for (const std::string& reading : stack_) {
      if (reading == canonical) return Error("@include cycle: " + name + " is already being read");
    }
    Result<std::string> text = ReadWholeFile(name);
    if (!text.ok()) return Error("@include: " + text.error().ToString());
    return ParseText(*text, name, canonical, path.parent_path().string());
  }

  SeccompPolicy* policy_;
  std::vector<std::string> stack_;  // canonical paths of the files being read, outermost first
  std::map<std::string, std::string, std::less<>> defined_at_;
  bool located_ = false;  // the error being returned already starts with FILE:LINE
};

Result<SeccompPolicy> SeccompPolicy::ParseFile(const std::string& path) {
  CROSVM_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  SeccompPolicy policy;
  PolicyParser parser(&policy);
  std::string dir = fs::path(path).parent_path().string();
  CROSVM_RETURN_IF_ERROR(
      parser.ParseText(text, path, CanonicalOrSelf(path), dir.empty() ? "." : dir));
  return policy;
}

Result<SeccompPolicy> SeccompPolicy::ParseString(std::string_view text,
                                                 const std::string& name_for_errors,
                                                 const std::string& include_dir) {
  SeccompPolicy policy;
  PolicyParser parser(&policy);
  CROSVM_RETURN_IF_ERROR(
      parser.ParseText(text, name_for_errors, "", include_dir.empty() ? "." : include_dir));
  return policy;
}

const PolicyRule* SeccompPolicy::Find(std::string_view syscall) const {
  for (const PolicyRule& r : rules_) {
    if (r.syscall == syscall) return &r;
  }
  return nullptr;
}

}  // namespace crosvm::sandbox
