//! The C allocator's settings for a process that moves large Arrow buffers under a memory limit.
//!
//! glibc's malloc raises its mmap threshold each time a large `mmap`ed block is freed (up to
//! 32 MiB), after which Arrow's buffers of a few hundred KiB come from its heaps instead and, freed
//! in another order than allocated, stay there: a 2 M-invite run under `--memory-limit 256MiB`
//! peaked at 1.4 GiB of RSS for a heap of about 0.7 GiB. A fixed threshold keeps every block of
//! 256 KiB or more in its own mapping, returned to the system when freed: the same run peaks at
//! under 0.5 GiB. Smaller blocks freed inside glibc's heaps still stay mapped: at 100 M invites
//! under a 2 GiB limit RSS stood at 2.8 GiB between stages whose memory had all been freed, so a
//! background thread returns free heap pages to the system once a second (`malloc_trim`).
//!
//! Each mapped block costs a map, page faults and an unmap, though (a 10 M-invite run spends
//! about 20% of its CPU time in the kernel with the fixed threshold, 10% without), so a run
//! without a memory limit keeps glibc's defaults. Other C libraries are left alone.

/// Blocks at least this large are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// How often free heap memory is returned to the system under a memory limit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies the settings when memory is `bounded` (a `--memory-limit` was given); call once,
/// before any other thread is started. Setting `M_MMAP_THRESHOLD` also turns off glibc's dynamic
/// adjustment of it; an explicit `GLIBC_TUNABLES` setting of the threshold wins.
pub fn configure(bounded: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if bounded {
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
        if !tuned {
            // SAFETY: mallopt only changes allocator parameters; it is called before any thread
            // is started.
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
        // A trimmer that cannot start leaves RSS higher, nothing else: not worth failing for.
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    // SAFETY: malloc_trim only returns free memory of glibc's heaps to the
                    // system; it takes the allocator's own locks and is safe from any thread.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bounded;
}
