// One register function per emitter family (one file each in compiler/codegen/ops/).
#pragma once

#include "compiler/codegen/emitter.h"

namespace kiln::codegen {

void registerActivationEmitters(EmitterRegistry& r);     // activation.cpp: unary activations
void registerElementwiseEmitters(EmitterRegistry& r);    // elementwise.cpp: broadcasting binary/variadic ops and PRelu
void registerConvEmitters(EmitterRegistry& r);           // conv.cpp: Conv (+epilogue), SeparableConv2D, ConvTranspose
void registerPoolEmitters(EmitterRegistry& r);           // pool.cpp
void registerLinearEmitters(EmitterRegistry& r);         // linear.cpp: Gemm (+epilogue), MatMul
void registerNormalizationEmitters(EmitterRegistry& r);  // normalization.cpp: BN, ScaleShift, InstanceNorm, LRN
void registerSoftmaxEmitters(EmitterRegistry& r);        // softmax.cpp
void registerReduceEmitters(EmitterRegistry& r);         // reduce.cpp: the reductions, ArgMax, ArgMin
void registerResizeEmitters(EmitterRegistry& r);         // resize.cpp: Resize (plain and NCHWc)
void registerWinogradEmitters(EmitterRegistry& r);       // winograd.cpp: WinogradInput, WinogradOutput (plain and NCHWc)
void registerLayoutEmitters(EmitterRegistry& r);         // layout.cpp: Reorder
void registerShapeEmitters(EmitterRegistry& r);          // shape.cpp: Reshape, Transpose, Concat, Pad, Slice, ...

}  // namespace kiln::codegen
