// A chunk: a piece of a round's text, the unit that is embedded and stored in
// the vector store. Its id derives from (round_id, index), never at random.
#pragma once

#include <cstdint>
#include <string>

#include "memfuse/ids.h"

namespace memfuse {

struct Chunk {
  ChunkId id;              // == make_chunk_id(round_id, index)
  RoundId round_id;
  std::string session_id;  // the round's session: chunks never change session
  std::uint32_t index = 0;
  std::string text;        // non-empty, valid UTF-8

  friend bool operator==(const Chunk&, const Chunk&) = default;
};

}  // namespace memfuse
