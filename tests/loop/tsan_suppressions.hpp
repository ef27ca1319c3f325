#pragma once
// ThreadSanitizer suppressions for the bridge tests (included once per test
// program; inert in builds without TSan).
//
// An exception that crosses threads is reference-counted by libstdc++
// (exception_ptr, __cxa_end_catch) with atomics inside the uninstrumented
// libstdc++.so: TSan cannot see them, so when a pool thread drops the last
// exception_ptr after the catching thread has read the exception object, it
// reports a race on memory whose lifetime was in fact ordered. Only those
// frames are suppressed; every other report still fails the run.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "race:std::__exception_ptr::exception_ptr::_M_addref\n"
         "race:__cxa_free_exception\n";
}
