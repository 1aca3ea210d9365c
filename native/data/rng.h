// Counter-based randomness for the data pipeline. Every draw is a pure function of (seed, a
// stream named by epoch / sample index / view, a draw counter), so what a worker thread computes
// for a sample never depends on which thread computes it, in what order, or how many threads
// there are: the loader's output is a function of its options alone.
#pragma once

#include <cmath>
#include <cstdint>

namespace s2bnn::data {

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the
// generator cuRAND and PyTorch's CUDA RNG use. Key = the 64-bit seed; counter word 0 counts
// blocks of four 32-bit outputs and words 1..3 name the stream.
class Philox {
 public:
  Philox(uint64_t seed, uint32_t stream1, uint32_t stream2, uint32_t stream3)
      : key0_(static_cast<uint32_t>(seed)), key1_(static_cast<uint32_t>(seed >> 32)),
        counter_{0, stream1, stream2, stream3} {}

  uint32_t next_u32() {
    if (used_ == 4) refill();
    return block_[used_++];
  }

  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }

  // Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform on [low, high) (torch.empty(1).uniform_(low, high) semantics: low + (high - low) * u).
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Uniform integer in [0, n), n >= 1, without modulo bias (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    if (n <= 0xFFFFFFFFull) {
      const uint32_t bound = static_cast<uint32_t>(n);
      const uint32_t threshold = static_cast<uint32_t>(-bound) % bound;
      for (;;) {
        const uint64_t m = static_cast<uint64_t>(next_u32()) * bound;
        if (static_cast<uint32_t>(m) >= threshold) return m >> 32;
      }
    }
    // Larger ranges (never needed by image datasets) fall back to rejection on 64 bits.
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
      const uint64_t x = next_u64();
      if (x < limit) return x % n;
    }
  }

  // True with probability p (torch.rand(1) < p, as RandomApply and the Random* flips draw it).
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
    const uint64_t product = static_cast<uint64_t>(a) * b;
    hi = static_cast<uint32_t>(product >> 32);
    lo = static_cast<uint32_t>(product);
  }

  void refill() {
    uint32_t c0 = counter_[0], c1 = counter_[1], c2 = counter_[2], c3 = counter_[3];
    uint32_t k0 = key0_, k1 = key1_;
    for (int round = 0; round < 10; ++round) {
      uint32_t hi0, lo0, hi1, lo1;
      mulhilo(0xD2511F53u, c0, hi0, lo0);
      mulhilo(0xCD9E8D57u, c2, hi1, lo1);
      const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
      c0 = n0;
      c1 = lo1;
      c2 = n2;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    block_[0] = c0;
    block_[1] = c1;
    block_[2] = c2;
    block_[3] = c3;
    used_ = 0;
    ++counter_[0];
  }

  uint32_t key0_, key1_;
  uint32_t counter_[4];
  uint32_t block_[4] = {0, 0, 0, 0};
  int used_ = 4;
};

// Stream names. A sample's augmentation draws come from (seed; epoch, index, view); the epoch's
// shuffle from (seed; epoch, -, kShuffleStream). View numbers are small, so the shuffle stream
// can never collide with a sample stream.
inline constexpr uint32_t kShuffleStream = 0xFFFFFFFFu;

inline Philox sample_stream(uint64_t seed, int64_t epoch, int64_t index, int64_t view) {
  return Philox(seed, static_cast<uint32_t>(view), static_cast<uint32_t>(index),
                static_cast<uint32_t>(epoch));
}

inline Philox shuffle_stream(uint64_t seed, int64_t epoch) {
  return Philox(seed, kShuffleStream, 0, static_cast<uint32_t>(epoch));
}

}  // namespace s2bnn::data
