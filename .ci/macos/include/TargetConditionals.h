/*
 * The one macOS SDK header that ring's C code includes (ring-core/base.h), for `.ci/macos-check` only.
 *
 * Linux has no macOS SDK, and `cargo check` for an Apple target still runs the build scripts of dev-dependencies,
 * so ring (under rustls/reqwest, used by the crawler example) compiles its C and assembly with clang
 * --target=*-apple-macosx. Everything else it includes is a compiler header (stddef.h, stdint.h with
 * -ffreestanding). The objects are never linked: `cargo check` only type-checks the Rust code.
 * Values as in Apple's SDK for a macOS (not iOS) build.
 */
#ifndef CONCURRENT_FUTURES_CI_TARGET_CONDITIONALS_H
#define CONCURRENT_FUTURES_CI_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif
