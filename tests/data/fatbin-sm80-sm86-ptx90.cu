// The fixture tests/data/fatbin-sm80-sm86-ptx90.elf (a shared library) was built from this file with
// nvcc -shared -Xcompiler -fPIC -cudart shared -gencode arch=compute_80,code=sm_80
//      -gencode arch=compute_86,code=sm_86 -gencode arch=compute_90,code=compute_90 (then strip)
__global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }
extern "C" void launch(float *x) { scale<<<1, 32>>>(x, 2.0f); }
