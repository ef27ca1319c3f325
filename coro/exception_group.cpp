#include "coro/exception_group.hpp"

#include <stdexcept>

#include "coro/errors.hpp"

namespace corio {

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : message_(std::move(message)), excs_(std::move(exceptions)) {
  if (excs_.empty()) throw ValueError("ExceptionGroup: needs at least one exception");
  for (const auto& e : excs_)
    if (!e) throw std::invalid_argument("ExceptionGroup: null exception_ptr");
  what_ = message_ + " (" + std::to_string(excs_.size()) + (excs_.size() == 1 ? " sub-exception)" : " sub-exceptions)");
}

std::vector<std::exception_ptr> ExceptionGroup::leaves() const {
  std::vector<std::exception_ptr> out;
  for (const auto& e : excs_) {
    if (!visit_group(e, [&](const ExceptionGroup& g) {
          auto sub = g.leaves();
          out.insert(out.end(), sub.begin(), sub.end());
        })) {
      out.push_back(e);
    }
  }
  return out;
}

std::string ExceptionGroup::details() const {
  std::string out = what_;
  describe(out, 1);
  return out;
}

void ExceptionGroup::describe(std::string& out, int depth) const {
  std::size_t i = 0;
  for (const auto& e : excs_) {
    out += '\n';
    out.append(static_cast<std::size_t>(depth) * 2, ' ');
    out += '[' + std::to_string(++i) + "] ";
    try {
      std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
      out += g.what();
      g.describe(out, depth + 1);
    } catch (const std::exception& x) {
      out += x.what();
    } catch (const CancelledError& c) {
      out += std::string("CancelledError: ") + c.what();
    } catch (...) {
      out += "unknown exception";
    }
  }
}

}  // namespace corio
