// Scalar float math as LLVM IR, written without libm calls so the loop
// vectorizer can widen it and artifacts stay self-contained: exp, log1p-free
// softplus, tanh, sigmoid, and the activation functions (shared by the
// activation emitters and the fused Conv/Gemm epilogue), erf and rounding.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include "compiler/ir/attributes.h"

namespace kiln::codegen {

llvm::Value* emitExp(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitLog(llvm::IRBuilder<>& b, llvm::Value* x);  // log(0) = -inf, log(x < 0) = NaN
llvm::Value* emitTanh(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitSigmoid(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emitErf(llvm::IRBuilder<>& b, llvm::Value* x);
// C's powf(x, y): a finite negative x needs an integral y (odd ones keep x's sign),
// pow(x, 0) = pow(1, y) = 1 even for NaN; exp(y * log|x|) otherwise.
llvm::Value* emitPow(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);
// powf(x, exponent) for a compile-time exponent: the exact cheap forms for
// 0, 0.5, 1, 2, 3 and -1 (sqrt, products, a division), emitPow otherwise.
llvm::Value* emitPowByConstant(llvm::IRBuilder<>& b, llvm::Value* x, float exponent);

// Clip: x raised to lo, then lowered to hi (so hi wins when lo > hi), NaN
// kept; lo and hi have x's type (scalar or vector).
llvm::Value* emitClip(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* lo, llvm::Value* hi);

// The unary IR op (Relu, LeakyRelu, Elu, Selu, Sigmoid, Tanh, HardSigmoid,
// HardSwish, Softplus, Gelu, Clip, Log, Exp, Sqrt, Erf, Abs, Neg, Reciprocal,
// Floor, Ceil, Round, Sign) applied to x with the op's attributes.
llvm::Value* emitActivation(llvm::IRBuilder<>& b, const std::string& op, const Attributes& attrs, llvm::Value* x);

// The fused epilogue activation of Conv/Gemm (attributes activation,
// activation_alpha, activation_beta; see compiler/ops/epilogue.h); returns x
// unchanged when there is none.
llvm::Value* emitEpilogueActivation(llvm::IRBuilder<>& b, const Attributes& attrs, llvm::Value* x);

}  // namespace kiln::codegen
