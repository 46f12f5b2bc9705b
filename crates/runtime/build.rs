//! Builds `src/uring_coop.c` (see its header: cooperative io_uring task running for glommio's
//! rings).

fn main() {
    println!("cargo:rerun-if-changed=src/uring_coop.c");
    cc::Build::new().file("src/uring_coop.c").warnings(true).compile("shoal_uring_coop");
}
