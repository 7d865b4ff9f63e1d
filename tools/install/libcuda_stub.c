/* A stand-in for the NVIDIA driver's libcuda.so.1 on a machine without a
 * GPU, for `make check-cuda`: the CUDA build of MXNet links against
 * libcuda.so.1 and the names below, so it loads; every call answers
 * CUDA_ERROR_NO_DEVICE, so MXNet sees no GPU and runs on the CPU.
 * Build: cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o libcuda.so.1 libcuda_stub.c */
#define CUDA_SUCCESS 0
#define CUDA_ERROR_NO_DEVICE 100

typedef int CUresult;

CUresult cuInit(unsigned int flags) { (void)flags; return CUDA_ERROR_NO_DEVICE; }
CUresult cuDriverGetVersion(int *version) { *version = 0; return CUDA_ERROR_NO_DEVICE; }
CUresult cuDeviceGetCount(int *count) { *count = 0; return CUDA_ERROR_NO_DEVICE; }
CUresult cuGetErrorString(CUresult error, const char **text) {
    (void)error;
    *text = "no CUDA device (stand-in driver)";
    return CUDA_SUCCESS;
}

/* The other driver functions libmxnet.so 1.9.1 links against. */
#define NO_DEVICE(name) CUresult name(void) { return CUDA_ERROR_NO_DEVICE; }
NO_DEVICE(cuDeviceGet)
NO_DEVICE(cuDevicePrimaryCtxRetain)
NO_DEVICE(cuGraphKernelNodeGetParams)
NO_DEVICE(cuGraphNodeGetType)
NO_DEVICE(cuLaunchKernel)
NO_DEVICE(cuModuleGetFunction)
NO_DEVICE(cuModuleLoadData)
NO_DEVICE(cuModuleLoadDataEx)
NO_DEVICE(cuModuleUnload)
