// Gradient buffers of the CPU ops. A fresh [N, V] gradient is written once, and every page of it
// faults on first touch: with torch's CPU allocator each call gets fresh pages from the kernel,
// zeroed, and at 4096 x 32000 fp32 (0.5 GB) that costs as much as writing the gradient (measured
// on 2 cores: 128,000 4 KiB faults took about half the op's time; with transparent huge pages,
// asked for below, ~250 faults that still zero 0.5 GB, ~23 ms of a ~90 ms step).
//
// So large gradients come from a one-entry cache, as CUDA's caching allocator does for GPU memory:
// when a gradient tensor is freed (the optimizer's zero_grad, the next step's .grad), its pages
// stay mapped, and the next call asking for the same size writes into them with no fault. At most
// one idle buffer is held (a newer one replaces it; a request of another size unmaps it), only for
// buffers of kPoolMinBytes or more; release_cached_gradient() (pylaundering.ops.empty_cache())
// hands it back, and PYLAUNDERING_GRAD_CACHE=0 turns the cache off.
#include "cpu/grad_buffer.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pylaundering {
namespace {

constexpr int64_t kPoolMinBytes = int64_t(64) << 20;
constexpr uintptr_t kHuge = uintptr_t(2) << 20;

// Transparent huge pages for the 2 MiB-aligned interior of [p, p + bytes): advice, ignored where
// THP is off; ~250 faults instead of 128,000 for 0.5 GB. (torch's THP_MEM_ALLOC_ENABLE=1 does the
// same for every allocation, but users would have to know to set it before importing torch.)
void advise_huge_pages(void* ptr, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < 8 * kHuge) return;  // small buffers: few faults, not worth a syscall
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (p + bytes) & ~(kHuge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)ptr;
  (void)bytes;
#endif
}

bool cache_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("PYLAUNDERING_GRAD_CACHE");
    return !(v != nullptr && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0));
  }();
  return on;
}

struct Cache {
  std::mutex mu;
  void* ptr = nullptr;
  size_t bytes = 0;
};

// Never destroyed: tensors freed during interpreter shutdown still call give_back.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

#if defined(__linux__)
void* map_block(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  TORCH_CHECK(p != MAP_FAILED, "pylaundering: could not allocate a ", bytes, "-byte gradient");
  advise_huge_pages(p, bytes);
  return p;
}

void unmap_block(void* p, size_t bytes) { (void)munmap(p, bytes); }

// Puts (p, bytes) in the cache (nullptr: empties it) and returns what was there.
std::pair<void*, size_t> swap_cached(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(cache().mu);
  const std::pair<void*, size_t> old{cache().ptr, cache().bytes};
  cache().ptr = p;
  cache().bytes = p != nullptr ? bytes : 0;
  return old;
}

// The deleter of every cached-size gradient: the newest freed buffer stays, an older one goes.
void give_back(void* p, size_t bytes) {
  const auto [old, old_bytes] = swap_cached(p, bytes);
  if (old != nullptr) unmap_block(old, old_bytes);
}

// The cached buffer if it has this size; one of another size is unmapped (sizes rarely come back).
void* take(size_t bytes) {
  const auto [p, held] = swap_cached(nullptr, 0);
  if (p != nullptr && held == bytes) return p;
  if (p != nullptr) unmap_block(p, held);
  return nullptr;
}
#endif

}  // namespace

at::Tensor gradient_buffer(const at::Tensor& student, int64_t rows, int64_t cols) {
  const size_t bytes = size_t(rows) * size_t(cols) * student.element_size();
#if defined(__linux__)
  if (cache_enabled() && bytes >= size_t(kPoolMinBytes)) {
    void* p = take(bytes);
    if (p == nullptr) p = map_block(bytes);
    return at::from_blob(p, {rows, cols}, [bytes](void* q) { give_back(q, bytes); }, student.options());
  }
#endif
  at::Tensor g = at::empty({rows, cols}, student.options());
  advise_huge_pages(g.data_ptr(), bytes);
  return g;
}

int64_t release_cached_gradient() {
#if defined(__linux__)
  const auto [p, bytes] = swap_cached(nullptr, 0);
  if (p != nullptr) unmap_block(p, bytes);
  return int64_t(bytes);
#else
  return 0;
#endif
}

int64_t cached_gradient_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return int64_t(cache().bytes);
}

}  // namespace pylaundering
