/*
 * exceptions: C++ exceptions thrown and caught through several frames with
 * destructors to run (cleanup landing pads, _Unwind_Resume), rethrown,
 * and caught by base class (tools/eval-benign.ts builds it with g++ -O2).
 */
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

struct Tracker {
  int *count;
  ~Tracker() { ++*count; }
};

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

static int parse(const std::string &s, int *cleanups) {
  Tracker t{cleanups};
  if (s.empty()) throw ParseError("empty");
  if (s[0] == '-') throw std::invalid_argument("negative: " + s);
  return std::stoi(s); // throws std::out_of_range / invalid_argument too
}

static int layer(const std::string &s, int *cleanups) {
  Tracker t{cleanups};
  try {
    return parse(s, cleanups);
  } catch (const ParseError &) {
    throw; // rethrow through this frame
  }
}

int main() {
  const std::vector<std::string> inputs = {"12", "", "-4", "99999999999999999999", "x7", "42", "7", "", "abc", "5"};
  int cleanups = 0, sum = 0;
  std::map<std::string, int> errors;
  for (int round = 0; round < 20; round++) {
    for (const auto &s : inputs) {
      try {
        sum += layer(s, &cleanups);
      } catch (const std::exception &e) {
        errors[e.what()]++;
      }
    }
  }
  std::printf("exceptions: sum %d, %d cleanups, %zu kinds of error\n", sum, cleanups, errors.size());
  return 0;
}
