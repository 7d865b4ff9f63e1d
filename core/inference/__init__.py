"""The inference path: predictors and their backends, the photo handler (the Python
API), video tracking, ONNX export and INT8 quantization."""
