#include <attnbench/support/safetensors.h>

#include <attnbench/support/files.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace attnbench {
namespace {

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {{"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},
                                 {"BF16", at::kBFloat16}, {"I64", at::kLong}, {"I32", at::kInt},
                                 {"I16", at::kShort}, {"I8", at::kChar}, {"U8", at::kByte}, {"BOOL", at::kBool}};

std::string names_of(const TensorFile& file) {
  std::string out;
  for (const auto& kv : file.tensors) out += (out.empty() ? "" : ", ") + kv.first;
  return out.empty() ? "(none)" : out;
}

}  // namespace

TensorFile load_safetensors(const std::string& path) {
  auto fail = [&](const std::string& what) { return SafetensorsError(fmt::format("{}: {}", path, what)); };
  // A directory opens as a stream of unknown size and a device as an endless one: neither is a file.
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    throw fail(std::filesystem::is_directory(status) ? "is a directory, not a safetensors file"
                                                      : "is not a regular file, not a safetensors file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail("cannot open the safetensors file (does it exist?)");
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) throw fail("truncated: shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8) {
    throw fail(fmt::format("bad header: its length {} runs past the end of the {}-byte file", header_len, file_size));
  }
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("bad header: not JSON ({})", e.what()));
  }
  if (!j.is_object()) throw fail("bad header: not a JSON object");
  const uint64_t data_size = file_size - 8 - header_len;
  std::vector<char> data(data_size);
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  if (!in) throw fail("truncated: could not read the data section");

  TensorFile out;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (entry.is_object()) {
        for (const auto& [k, v] : entry.items()) out.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
      continue;
    }
    try {
      std::string dtype = entry.at("dtype").get<std::string>();
      const DtypeName* found = nullptr;
      for (const auto& d : kDtypes) {
        if (dtype == d.name) found = &d;
      }
      if (found == nullptr) throw fail(fmt::format("tensor '{}' has unsupported dtype '{}'", name, dtype));
      std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
      std::vector<uint64_t> offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size) {
        throw fail(fmt::format("tensor '{}' has data_offsets outside the {}-byte data section", name, data_size));
      }
      uint64_t numel = 1;
      for (int64_t s : shape) {
        if (s < 0) throw fail(fmt::format("tensor '{}' has a negative dimension", name));
        numel *= static_cast<uint64_t>(s);
      }
      uint64_t bytes = numel * c10::elementSize(found->type);
      if (bytes != offsets[1] - offsets[0]) {
        throw fail(fmt::format("tensor '{}': shape needs {} bytes but data_offsets span {}", name, bytes,
                               offsets[1] - offsets[0]));
      }
      at::Tensor t = at::empty(shape, at::TensorOptions().dtype(found->type));
      if (bytes) std::memcpy(t.data_ptr(), data.data() + offsets[0], bytes);
      out.tensors[name] = t;
    } catch (const nlohmann::json::exception& e) {
      throw fail(fmt::format("bad header entry for '{}': {}", name, e.what()));
    }
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const char* dtype = nullptr;
    for (const auto& d : kDtypes) {
      if (d.type == t.scalar_type()) dtype = d.name;
    }
    if (dtype == nullptr) throw SafetensorsError(fmt::format("{}: tensor '{}' has a dtype safetensors lacks", path, name));
    uint64_t bytes = t.nbytes();
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the format aligns the data section to 8 bytes
  // Whole or not at all: a cache or a weights file cut short by a full disk would fail every later load.
  try {
    AtomicFile out(path);
    uint64_t len = text.size();
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xff);
    out.write(len_bytes, sizeof(len_bytes));
    out.write(text);
    for (const at::Tensor& t : blobs) out.write(t.data_ptr(), t.nbytes());
    out.commit();
  } catch (const FileError& e) {
    throw SafetensorsError(e.what());
  }
}

at::Tensor require_tensor(const TensorFile& file, const std::string& path, const std::string& name,
                          at::IntArrayRef shape, bool integral) {
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) {
    throw SafetensorsError(fmt::format("{}: missing tensor '{}'; the file has: {}", path, name, names_of(file)));
  }
  if (integral ? !at::isIntegralType(it->second.scalar_type(), /*includeBool=*/false) : !it->second.is_floating_point()) {
    throw SafetensorsError(fmt::format("{}: tensor '{}' has dtype {}, expected {} dtype", path, name,
                                       c10::toString(it->second.scalar_type()), integral ? "an integer" : "a floating-point"));
  }
  if (it->second.sizes() != shape) {
    throw SafetensorsError(fmt::format("{}: tensor '{}' has shape {}, expected {}", path, name,
                                       c10::str(it->second.sizes()), c10::str(shape)));
  }
  return it->second;
}

}  // namespace attnbench
