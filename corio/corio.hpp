#pragma once
// corio: asyncio for C++20. The one header users include.
#include "coro/callback.hpp"
#include "coro/errors.hpp"
#include "coro/scheduler.hpp"
#include "coro/sleep.hpp"
#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "loop/fd_io.hpp"
#include "loop/future.hpp"
#include "loop/run.hpp"
#include "loop/thread_pool.hpp"
