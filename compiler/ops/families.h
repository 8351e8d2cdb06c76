// One register function per op family (one file each in compiler/ops/).
#pragma once

#include "compiler/ir/op.h"

namespace kiln {

void registerActivationOps(OpRegistry& r);     // activation.cpp: Relu, Sigmoid, Clip, PRelu, Log, ...
void registerElementwiseOps(OpRegistry& r);    // elementwise.cpp: Add, Sub, Mul, Div, Mod, Pow, Sum, Max, ...
void registerConvOps(OpRegistry& r);           // conv.cpp: Conv, SeparableConv2D, ConvTranspose
void registerPoolOps(OpRegistry& r);           // pool.cpp: MaxPool, AveragePool, Global*Pool
void registerLinearOps(OpRegistry& r);         // linear.cpp: Gemm, MatMul
void registerNormalizationOps(OpRegistry& r);  // normalization.cpp: BatchNormalization, InstanceNorm..., LRN
void registerSoftmaxOps(OpRegistry& r);        // softmax.cpp: Softmax, LogSoftmax, Hardmax
void registerReduceOps(OpRegistry& r);         // reduce.cpp: ReduceSum, ReduceMean, ReduceMax, ..., ArgMax, ArgMin
void registerResizeOps(OpRegistry& r);         // resize.cpp: Resize
void registerWinogradOps(OpRegistry& r);       // winograd.cpp: WinogradInput, WinogradOutput
void registerLayoutOps(OpRegistry& r);         // layout.cpp: Reorder
void registerShapeOps(OpRegistry& r);          // shape.cpp: Reshape, Transpose, Concat, Gather, ScatterND, Range, ...

}  // namespace kiln
