#include "loop/run.hpp"

namespace corio::detail {

void finish_run(EventLoop& loop) {
  loop.cancel_all_tasks("event loop is shutting down");
  loop.run_shutdown_hooks();
}

}  // namespace corio::detail
