// onnx_run: runs an ONNX model (e.g. one written by `python -m fusejit export`) with
// onnxruntime's C++ API, in a process with no Python in it.
//
//   onnx_run MODEL.onnx OUT_PREFIX [INPUT.bin[:SHAPE]]...
//
// One INPUT file per model input, in the model's order: the raw bytes of the tensor (C order,
// little-endian, the element type the model declares). SHAPE ("2,16"; "" for a scalar) is needed
// only where the model's shape has more than one dynamic dimension: one dynamic dimension is
// found from the file's size. Each output k is written raw to OUT_PREFIX<k>.bin, and described by
// one line on stdout: NAME<TAB>DTYPE<TAB>SHAPE<TAB>FILE (DTYPE as numpy names it: float32, int64,
// bool, ...). Exit status 0, 1 on any error (the message goes to stderr).

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct ElementType {
  const char* name;  // numpy's name
  size_t size;       // bytes
};

ElementType element_type(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return {"float32", 4};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return {"float64", 8};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return {"float16", 2};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return {"bfloat16", 2};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return {"int8", 1};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return {"int16", 2};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return {"int32", 4};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return {"int64", 8};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return {"uint8", 1};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return {"uint16", 2};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return {"uint32", 4};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return {"uint64", 8};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return {"bool", 1};
    default:
      throw std::runtime_error("element type " + std::to_string(static_cast<int>(t)) +
                               " is not supported by onnx_run");
  }
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) shape.push_back(std::stoll(item));
  return shape;
}

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The shape of input `name`: the one given, else the model's with at most one dynamic dimension
// taken from the file's size.
std::vector<int64_t> input_shape(const std::string& name, std::vector<int64_t> model_shape,
                                 const std::string* given, size_t bytes, size_t item) {
  if (bytes % item) {
    throw std::runtime_error("input " + name + ": " + std::to_string(bytes) +
                             " bytes is not a whole number of " + std::to_string(item) +
                             "-byte elements");
  }
  size_t n = bytes / item;
  std::vector<int64_t> shape = given ? parse_shape(*given) : model_shape;
  if (given && shape.size() != model_shape.size()) {
    throw std::runtime_error("input " + name + ": shape [" + *given + "] has " +
                             std::to_string(shape.size()) + " dims, the model's has " +
                             std::to_string(model_shape.size()));
  }
  int dynamic = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      if (dynamic >= 0) {
        throw std::runtime_error("input " + name + " has several dynamic dims [" +
                                 join(model_shape) + "]: give its shape as FILE:d0,d1,...");
      }
      dynamic = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (dynamic >= 0) shape[dynamic] = known ? static_cast<int64_t>(n) / known : 0;
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  if (static_cast<size_t>(count) != n) {
    throw std::runtime_error("input " + name + ": " + std::to_string(n) +
                             " elements in the file, shape [" + join(shape) + "] needs " +
                             std::to_string(count));
  }
  return shape;
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.onnx OUT_PREFIX [INPUT.bin[:SHAPE]]...\n";
    return 2;
  }
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "onnx_run");
  Ort::SessionOptions options;
  Ort::Session session(env, argv[1], options);
  Ort::AllocatorWithDefaultOptions allocator;

  const size_t n_in = session.GetInputCount(), n_out = session.GetOutputCount();
  if (static_cast<size_t>(argc - 3) != n_in) {
    throw std::runtime_error(std::string(argv[1]) + " has " + std::to_string(n_in) +
                             " inputs, " + std::to_string(argc - 3) + " files were given");
  }
  std::vector<std::string> in_names, out_names;
  std::vector<std::vector<char>> buffers(n_in);
  std::vector<Ort::Value> inputs;
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  for (size_t i = 0; i < n_in; ++i) {
    in_names.push_back(session.GetInputNameAllocated(i, allocator).get());
    Ort::TypeInfo type = session.GetInputTypeInfo(i);  // (info below is a view into it)
    auto info = type.GetTensorTypeAndShapeInfo();
    const ElementType et = element_type(info.GetElementType());
    std::string arg = argv[3 + i], shape_text;
    const size_t colon = arg.rfind(':');
    const bool has_shape = colon != std::string::npos;
    if (has_shape) {
      shape_text = arg.substr(colon + 1);
      arg = arg.substr(0, colon);
    }
    buffers[i] = read_file(arg);
    std::vector<int64_t> shape = input_shape(in_names[i], info.GetShape(),
                                             has_shape ? &shape_text : nullptr,
                                             buffers[i].size(), et.size);
    const size_t bytes = buffers[i].size();
    buffers[i].resize(bytes + 1);  // (a valid pointer, also for an empty tensor)
    inputs.push_back(Ort::Value::CreateTensor(cpu, buffers[i].data(), bytes, shape.data(),
                                              shape.size(), info.GetElementType()));
  }
  for (size_t k = 0; k < n_out; ++k) {
    out_names.push_back(session.GetOutputNameAllocated(k, allocator).get());
  }
  std::vector<const char*> in_ptrs, out_ptrs;
  for (auto& s : in_names) in_ptrs.push_back(s.c_str());
  for (auto& s : out_names) out_ptrs.push_back(s.c_str());

  std::vector<Ort::Value> outputs = session.Run(Ort::RunOptions{nullptr}, in_ptrs.data(),
                                                inputs.data(), n_in, out_ptrs.data(), n_out);

  for (size_t k = 0; k < n_out; ++k) {
    auto info = outputs[k].GetTensorTypeAndShapeInfo();
    const ElementType et = element_type(info.GetElementType());
    const size_t bytes = info.GetElementCount() * et.size;
    const std::string path = std::string(argv[2]) + std::to_string(k) + ".bin";
    std::ofstream f(path, std::ios::binary);
    if (bytes) f.write(static_cast<const char*>(outputs[k].GetTensorRawData()), bytes);
    if (!f) throw std::runtime_error("cannot write " + path);
    std::cout << out_names[k] << '\t' << et.name << '\t' << join(info.GetShape()) << '\t'
              << path << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Ort::Exception& e) {
    std::cerr << "onnx_run: onnxruntime: " << e.what() << '\n';
  } catch (const std::exception& e) {
    std::cerr << "onnx_run: " << e.what() << '\n';
  }
  return 1;
}
