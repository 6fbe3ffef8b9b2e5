// Chunker: MemFuse's "message" strategy.
//
// A round becomes `[role]: content` lines, one per message, joined by "\n"
// and packed into chunks of at most `chunk_size_bytes` bytes. A line longer
// than that is split, preferring the last whitespace in the second half of
// the window and never inside a UTF-8 sequence. Chunk i of round r has the id
// make_chunk_id(r, i): re-chunking a round gives the same chunks and ids, so
// every store write of them is idempotent.
//
// Thread-safety: a pure function.
#pragma once

#include <cstddef>
#include <vector>

#include "memfuse/chunk.h"
#include "memfuse/round.h"

namespace memfuse {

// REQUIRES: chunk_size_bytes >= 16 (the configuration's minimum);
// the round is valid (validate_round).
[[nodiscard]] std::vector<Chunk> chunk_round(const Round& round, std::size_t chunk_size_bytes);

}  // namespace memfuse
