#include "memfuse/chunker.h"

#include <string>
#include <string_view>

#include "memfuse/assert.h"

namespace memfuse {
namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The longest prefix of `text` of at most `limit` bytes that ends at a UTF-8
// boundary, preferring to end after whitespace in the second half.
std::size_t split_point(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text.size();
  std::size_t cut = limit;
  while (cut > 0 && is_continuation(static_cast<unsigned char>(text[cut]))) --cut;
  for (std::size_t i = cut; i > limit / 2; --i) {
    if (text[i - 1] == ' ' || text[i - 1] == '\n' || text[i - 1] == '\t') return i;
  }
  MEMFUSE_ASSERT(cut > 0);
  return cut;
}

}  // namespace

std::vector<Chunk> chunk_round(const Round& round, std::size_t chunk_size_bytes) {
  MEMFUSE_ASSERT(chunk_size_bytes >= 16);
  std::vector<std::string> texts;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) texts.push_back(std::move(current));
    current.clear();
  };
  for (const Message& m : round.messages) {
    std::string line = "[" + m.role + "]: " + m.content;
    std::string_view rest = line;
    while (!rest.empty()) {
      const std::size_t room = current.empty() ? chunk_size_bytes : chunk_size_bytes - current.size() - 1;
      if (!current.empty() && (current.size() + 1 >= chunk_size_bytes || rest.size() > room)) {
        flush();  // a line starts a fresh chunk rather than being split across two
        continue;
      }
      const std::size_t n = split_point(rest, room);
      if (!current.empty()) current.push_back('\n');
      current.append(rest.substr(0, n));
      rest.remove_prefix(n);
      if (!rest.empty()) flush();
    }
  }
  flush();
  std::vector<Chunk> chunks;
  chunks.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto index = static_cast<std::uint32_t>(i);
    chunks.push_back(Chunk{make_chunk_id(round.id, index), round.id, round.session_id, index,
                           std::move(texts[i])});
  }
  return chunks;
}

}  // namespace memfuse
