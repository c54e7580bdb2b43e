#pragma once
// UTF-8 helpers for the tokenizers.
//
// Decoding is lenient and follows llama.cpp byte for byte, because tokenizers must agree with it
// on any input, valid or not: a malformed sequence becomes one U+FFFD per offending byte, while
// overlong forms and surrogates are decoded as written (they are not rejected). Code points
// above U+10FFFF (possible from F5..F7 lead bytes) become U+FFFD.
//
// GPT-2's byte-level BPE spells every byte as a printable code point: bytes that are printable
// Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 are numbered from
// U+0100 upwards in byte order (so ' ' is "Ġ" U+0120 and '\n' is "Ċ" U+010A).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace smelt {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence that starts with `lead`, from its top four bits (1 for ASCII and
// for stray continuation bytes, 2, 3 or 4). Does not validate.
inline size_t Utf8SeqLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Code points of `s`, decoded leniently as described above.
std::vector<uint32_t> DecodeUtf8Lenient(std::string_view s);

// Appends the UTF-8 encoding of `cp` (surrogates are encoded as three bytes, like llama.cpp;
// anything above U+10FFFF is written as U+FFFD).
void AppendUtf8(uint32_t cp, std::string& out);

// GPT-2 byte-to-unicode mapping: the code point that spells byte `b`.
uint32_t ByteToUnicode(uint8_t b);
// Inverse: the byte spelled by code point `cp`, or -1 if `cp` spells no byte.
int UnicodeToByte(uint32_t cp);

// Every byte of `raw` spelled through ByteToUnicode (the text form of a byte-level BPE piece).
std::string ByteEncode(std::string_view raw);

}  // namespace smelt
