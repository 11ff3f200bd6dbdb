# pare: plain Makefile. `make demo`, `make check`; see README.md.

CC ?= cc
PREFIX ?= /usr/local
SANITIZE ?=
WERROR ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

ARCH := $(shell uname -m)
ifeq ($(filter x86_64 amd64 i386 i686,$(ARCH)),)
X86 ?= 0
else
X86 ?= 1
endif

ifneq ($(SANITIZE),)
BUILD ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(X86),0)
BUILD ?= build/nox86
else
BUILD ?= build/rel
endif

# OpenBLAS by default; BLAS_LIBS=... BLAS_CFLAGS=... for another CBLAS.
ifeq ($(origin BLAS_LIBS),undefined)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null) -DPARE_OPENBLAS
BLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wcast-qual -Wpointer-arith
ifneq ($(WERROR),)
WARN += -Werror
endif

CPPFLAGS := -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L $(BLAS_CFLAGS)
ifeq ($(X86),0)
CPPFLAGS += -DPARE_NO_X86_KERNELS
endif
CFLAGS := -std=c11 -O2 -g -fPIC -fopenmp $(WARN) $(SANFLAGS)
LDFLAGS := -fopenmp $(SANFLAGS)
LDLIBS := $(BLAS_LIBS) -lz -lm -lpthread

# Kernels: the scalar oracle stays scalar; the ISA builds get their flags.
REF_FLAGS := -fno-tree-vectorize
AVX2_FLAGS := -O3 -mavx2 -mfma
AVX512_FLAGS := -O3 -mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl -mprefer-vector-width=512

# ONNX: C code generated at build time by protoc-c from the onnx.proto that
# Debian's libonnx-dev installs (the .proto is not copied here).
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
ifeq ($(origin ONNX),undefined)
ONNX := $(if $(and $(wildcard $(ONNX_PROTO)),$(shell command -v protoc-c 2>/dev/null),$(wildcard /usr/include/protobuf-c/protobuf-c.h)),1,0)
endif
ifeq ($(ONNX),1)
ONNX_GEN := $(BUILD)/gen/onnx/onnx.pb-c.c
ONNX_OBJ := $(BUILD)/obj/gen/onnx.pb-c.o
CPPFLAGS += -I$(BUILD)/gen/onnx -DPARE_ONNX
LDLIBS += -lprotobuf-c
else
ONNX_OBJ :=
endif

LIB_SRC := $(sort $(wildcard src/*/*.c))
ifeq ($(X86),0)
LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(ONNX_OBJ)
TOOL_SRC := $(sort $(wildcard tools/pare/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

LIBA := $(BUILD)/libpare.a
LIBSO := $(BUILD)/libpare.so
PARE := $(BUILD)/pare
TESTS := $(BUILD)/pare-tests

.PHONY: all lib check check-isa demo deps install uninstall bench-train bench-efficient bench-prune bench-share bench-quant bench-sparse-step bench-dw bench-onnx bench-qdq bench-engine bench-int8 bench-online fuzz clean help
.DEFAULT_GOAL := all

all: $(LIBA) $(LIBSO) $(PARE) $(EXAMPLES)

lib: $(LIBA) $(LIBSO)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/onnx/onnx.pb-c.c: $(ONNX_PROTO)
	@mkdir -p $(dir $@)
	cp $(ONNX_PROTO) $(BUILD)/gen/onnx/onnx.proto
	cd $(BUILD)/gen/onnx && protoc-c --c_out=. onnx.proto

$(BUILD)/gen/onnx/onnx.pb-c.h: $(BUILD)/gen/onnx/onnx.pb-c.c

# Generated code: built without the project's warnings.
$(ONNX_OBJ): $(ONNX_GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=c11 -O2 -g -fPIC -w $(SANFLAGS) -c $< -o $@

# Sources that include the generated header wait for it (explicit targets: a
# pattern rule without a recipe would add no prerequisite).
$(filter $(BUILD)/obj/src/io/onnx%,$(LIB_OBJ)) $(filter $(BUILD)/obj/tests/test_onnx%,$(TEST_OBJ)): $(ONNX_GEN)

$(BUILD)/obj/src/kernels/%_ref.o: CFLAGS += $(REF_FLAGS)
$(BUILD)/obj/src/kernels/%_avx2.o: CFLAGS += $(AVX2_FLAGS)
$(BUILD)/obj/src/kernels/%_avx512.o: CFLAGS += $(AVX512_FLAGS)
# VNNI only in the files named for it (the int8 kernels dispatch to them when the CPU has
# it): with the flag on a whole level, gcc could emit VNNI where no one checks for it.
$(BUILD)/obj/src/kernels/%_vnni_avx2.o: CFLAGS += -mavxvnni
$(BUILD)/obj/src/kernels/%_vnni_avx512.o: CFLAGS += -mavx512vnni

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libpare.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(PARE): $(TOOL_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(LIBA) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

# The test list is generated from PARE_TEST(...) lines in tests/*.c.
$(BUILD)/gen/test_list.inc: $(TEST_SRC)
	@mkdir -p $(dir $@)
	@grep -ho '^PARE_TEST[A-Z_]*([a-z0-9_]*)' $(TEST_SRC) | sort -u > $@.tmp
	@cmp -s $@.tmp $@ 2>/dev/null || mv $@.tmp $@; rm -f $@.tmp

$(BUILD)/obj/tests/runner.o: $(BUILD)/gen/test_list.inc
$(BUILD)/obj/tests/runner.o: CPPFLAGS += -I$(BUILD)/gen

$(TESTS): $(TEST_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(LIBA) $(LDLIBS)

# `make check`: the whole suite; ends with "N passed, N failed".
check: $(TESTS) $(PARE) $(EXAMPLES)
	@PARE_BIN=$(abspath $(PARE)) PARE_EXAMPLES=$(abspath $(BUILD)/examples) \
	  $(TESTS) -j $(JOBS) $(T)

# The whole suite at every ISA level this machine has.
check-isa: $(TESTS) $(PARE) $(EXAMPLES)
	@for isa in ref avx2 avx512; do echo "== PARE_ISA=$$isa"; \
	  PARE_ISA=$$isa PARE_BIN=$(abspath $(PARE)) PARE_EXAMPLES=$(abspath $(BUILD)/examples) \
	  $(TESTS) -j $(JOBS) $(T) || exit 1; done

deps:
	@scripts/deps.sh

DEMO_DIR ?= demo-out
demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(PARE) $(DEMO_DIR)

install: $(LIBA) $(LIBSO) $(PARE)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/libpare.a
	install -m 755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/libpare.so.0
	ln -sf libpare.so.0 $(DESTDIR)$(PREFIX)/lib/libpare.so
	install -m 644 include/pare.h $(DESTDIR)$(PREFIX)/include/pare.h
	install -m 755 $(PARE) $(DESTDIR)$(PREFIX)/bin/pare
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/^#define PARE_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' include/pare.h | paste -sd.)|' \
	  -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|' -e 's|@ONNX_LIBS@|$(if $(filter 1,$(ONNX)),-lprotobuf-c,)|' \
	  scripts/pare.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/pare.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libpare.a $(DESTDIR)$(PREFIX)/lib/libpare.so \
	  $(DESTDIR)$(PREFIX)/lib/libpare.so.0 $(DESTDIR)$(PREFIX)/include/pare.h \
	  $(DESTDIR)$(PREFIX)/bin/pare $(DESTDIR)$(PREFIX)/lib/pkgconfig/pare.pc

bench-train: $(PARE)
	@bench/train.sh $(abspath $(PARE))

# The pruning table on W1 (bench/prune.sh): SET=full (default), all (every method on every
# scheme, about 14 hours more at 1 thread) or quick; REUSE=1 goes on from the runs logged.
bench-prune: $(PARE)
	@bench/prune.sh $(abspath $(PARE))

# W1 shared with 16 and 4 centroids per layer (k-means, + fine-tuning, + the Deep k-Means
# regulariser), scalar sharing and SmartExchange: accuracy and file size
# (BASE=w1.pare to start from a trained W1, LAMBDA=20, CONFIGS="k16 k4-ft ..."; docs/ALGORITHMS.md).
bench-share: $(PARE)
	@bench/share.sh $(abspath $(PARE))

# W1 float, PTQ int8 (each calibration method), QAT int8 and 4-bit, ADMM binary: accuracy and
# file size (bench/quant.sh; ROWS="..." a subset, QAT_EPOCHS=2 ADMM_EPOCHS=2 FINETUNE=2).
bench-quant: $(PARE)
	@bench/quant.sh $(abspath $(PARE))

# W1 trained densely and with each efficient-training technique alone and combined
# (REPEAT=3 for medians; CONFIGS="dense sparse90 ..." a subset; docs/EFFICIENT.md).
bench-efficient: $(PARE)
	@bench/efficient.sh $(abspath $(PARE))

# Sparse training products and W1 steps, dense vs sparse (bench/sparse_step.c):
# `make bench-sparse-step` runs `step`; run $(BUILD)/sparse_step layers for per-product times.
$(BUILD)/sparse_step: bench/sparse_step.c $(LIBA)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBA) $(LDLIBS)
bench-sparse-step: $(BUILD)/sparse_step
	env -u OPENBLAS_CORETYPE $(BUILD)/sparse_step step 2

# The depthwise kernel alone on MobileNetV2's shapes (bench/dw_kernel.c; ISA=avx2 or ref).
$(BUILD)/dw_kernel: bench/dw_kernel.c $(LIBA)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBA) $(LDLIBS)
bench-dw: $(BUILD)/dw_kernel
	env -u OPENBLAS_CORETYPE $(BUILD)/dw_kernel $(or $(ISA),avx512)

# Inference latency: ResNet-18, MobileNetV2, VGG-16 dense and pruned, beside ONNX Runtime and
# PyTorch (THREADS="1 2" MODELS=... REUSE=1 keeps the model files).
bench-engine: $(PARE)
	@bench/engine.sh $(abspath $(PARE))

# int8 latency: ResNet-18 and MobileNetV2 quantized (bench/int8_quant.c), dense and 90% block
# and pattern sparse, beside float32 in pare and ONNX Runtime (bench/int8.sh; THREADS="1 2").
$(BUILD)/int8_quant: bench/int8_quant.c $(LIBA)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)
bench-int8: $(PARE) $(BUILD)/int8_quant $(BUILD)/qdq_model
	@bench/int8.sh $(abspath $(PARE)) $(abspath $(BUILD)/int8_quant) $(abspath $(BUILD)/qdq_model)

# ONNX figures: pare-exported models under ONNX Runtime against pare, imported torchvision
# models timed against ONNX Runtime (bench/onnx.sh; THREADS="1 2" RUNS=50).
bench-onnx: $(PARE)
	@bench/onnx.sh $(abspath $(PARE))

# ONNX Runtime float32 against its int8 (QDQ) on ResNet-18 and MobileNetV2 that
# bench/qdq_model.c quantizes with the tests' hand quantizer (bench/qdq.sh; THREADS="1 2" RUNS=50).
$(BUILD)/qdq_model: bench/qdq_model.c tests/qdq_fixture.c tests/qdq_fixture.h $(LIBA)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -o $@ bench/qdq_model.c tests/qdq_fixture.c $(LIBA) $(LDLIBS)
bench-qdq: $(PARE) $(BUILD)/qdq_model
	@bench/qdq.sh $(abspath $(PARE)) $(abspath $(BUILD)/qdq_model)

# Online fine-tuning on drifting Fashion-MNIST streams: edgeol vs immediate vs never
# (MODEL=lenet|fmnist-cnn THREADS=1 SEEDS="1 2 3" DRIFTS="rotate contrast"; docs/ONLINE.md).
bench-online: $(PARE)
	@bench/online.sh $(abspath $(PARE))

# libFuzzer targets for every file reader (clang); FUZZ_RUNS iterations each.
FUZZ_RUNS ?= 20000
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(ONNX_GEN)
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp=libgomp $(CPPFLAGS) -DPARE_NO_X86_KERNELS \
	  -o $@ $< $(FUZZ_LIB_SRC) $(ONNX_GEN) $(LDLIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do echo "== $$f"; mkdir -p build/fuzz/corpus-$$(basename $$f); \
	  $$f -runs=$(FUZZ_RUNS) -max_len=65536 build/fuzz/corpus-$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) || exit 1; done

clean:
	rm -rf build

help:
	@echo "make demo | check | check-isa | install PREFIX=... | bench-train | fuzz | clean"
	@echo "  SANITIZE=address,undefined  build and test with sanitizers (build/san)"
	@echo "  X86=0                        build without the x86 kernels (the portable path)"
	@echo "  T=name                       run only the tests whose name contains it"

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
