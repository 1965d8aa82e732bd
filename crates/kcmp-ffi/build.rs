//! Gives libkcmp.so its soname, so that programs linked with `-lkcmp`
//! record `libkcmp.so.0` (the ABI version) and not the build file name.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkcmp.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}
