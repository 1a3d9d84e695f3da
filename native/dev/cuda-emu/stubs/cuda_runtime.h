// Empty stand-in for the CUDA header of this name: emu.h and emu_wmma.h provide what the kernels use.
