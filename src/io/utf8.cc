#include "io/utf8.h"

#include <array>

namespace smelt {
namespace {

constexpr bool IsPrintableLatin1(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// byte -> code point (GPT-2 bytes_to_unicode)
constexpr std::array<uint16_t, 256> MakeByteToUnicode() {
  std::array<uint16_t, 256> t{};
  int next = 256;
  for (int b = 0; b < 256; ++b) t[b] = IsPrintableLatin1(b) ? b : next++;
  return t;
}
constexpr std::array<uint16_t, 256> kByteToUnicode = MakeByteToUnicode();

// code point (< 324) -> byte, -1 where none
constexpr std::array<int16_t, 324> MakeUnicodeToByte() {
  std::array<int16_t, 324> t{};
  for (auto& v : t) v = -1;
  for (int b = 0; b < 256; ++b) t[kByteToUnicode[b]] = static_cast<int16_t>(b);
  return t;
}
constexpr std::array<int16_t, 324> kUnicodeToByte = MakeUnicodeToByte();

bool IsCont(uint8_t c) { return (c & 0xC0) == 0x80; }

}  // namespace

std::vector<uint32_t> DecodeUtf8Lenient(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      i += 1;
    } else if ((c & 0x40) == 0) {  // stray continuation byte
      out.push_back(kReplacementChar);
      i += 1;
    } else if ((c & 0x20) == 0) {
      if (i + 1 < n && IsCont(p[i + 1])) {
        out.push_back(((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu));
        i += 2;
      } else {
        out.push_back(kReplacementChar);
        i += 1;
      }
    } else if ((c & 0x10) == 0) {
      if (i + 2 < n && IsCont(p[i + 1]) && IsCont(p[i + 2])) {
        out.push_back(((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu));
        i += 3;
      } else {
        out.push_back(kReplacementChar);
        i += 1;
      }
    } else if ((c & 0x08) == 0) {
      if (i + 3 < n && IsCont(p[i + 1]) && IsCont(p[i + 2]) && IsCont(p[i + 3])) {
        uint32_t cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) |
                      (p[i + 3] & 0x3Fu);
        out.push_back(cp <= 0x10FFFF ? cp : kReplacementChar);
        i += 4;
      } else {
        out.push_back(kReplacementChar);
        i += 1;
      }
    } else {  // F8..FF never start a sequence
      out.push_back(kReplacementChar);
      i += 1;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp > 0x10FFFF) cp = kReplacementChar;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t ByteToUnicode(uint8_t b) { return kByteToUnicode[b]; }

int UnicodeToByte(uint32_t cp) { return cp < kUnicodeToByte.size() ? kUnicodeToByte[cp] : -1; }

std::string ByteEncode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), out);
  return out;
}

}  // namespace smelt
