//! An SQLite VFS that hands each commit's write-ahead log frames to the file in one system call.
//!
//! SQLite appends a commit's pages to the write-ahead log (WAL) one frame at a time, and each
//! frame as two writes: its 24-byte header, then the page. A chat post touches about ten pages,
//! so it cost 21 `pwrite` calls (BENCHMARKS.md), each a system call in which the file system
//! also updates the file's times. This VFS is the platform's default one with a different WAL
//! file: writes that continue one another are gathered in memory and handed to the file in one
//! write once the commit's last frame is complete. SQLite publishes a commit to other
//! connections (in the wal-index header) only after that, so no connection can see a frame that
//! is not in the file yet. Every other use of the file (a read, a sync, a truncation, its size)
//! first writes what was gathered. The database file itself, and every other file, is the
//! default VFS's own, untouched.
//!
//! Durability is unchanged: a commit's frames reach the operating system before the commit
//! returns, as without this VFS. (With `synchronous = NORMAL` SQLite does not sync the log at a
//! commit; with `FULL`, the sync after the commit's frames writes what was gathered first.)
//!
//! How the commit's last frame is recognized: its header, and no other frame's, carries the
//! database's size in pages (bytes 4 to 7, non-zero), and SQLite writes its page right after it
//! (`walWriteOneFrame`). Gathered writes go to the file with that page. When such a header is
//! written over an earlier one (SQLite recomputing checksums after it overwrote a frame of the
//! same transaction), no page follows, so it goes to the file at once, with what was gathered.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The VFS's name, which a connection names to open a database through it.
pub const VFS_NAME: &str = "wal-merge";
/// [`VFS_NAME`] for C.
const VFS_NAME_C: &CStr = c"wal-merge";
/// The size of a WAL frame's header.
const FRAME_HEADER: usize = 24;
/// Gathered bytes that are written even before a commit's end (a large transaction's frames
/// still go in few writes, without holding its whole size in memory).
const MAX_GATHERED: usize = 256 << 10;
/// The most one call to the default VFS writes: the unix VFS takes at most 128 KiB less one
/// byte per call (it masks larger sizes).
const WRITE_CHUNK: usize = 64 << 10;

/// Why the VFS could not be registered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegisterError {
    /// SQLite has no default VFS to wrap.
    #[error("SQLite has no default VFS")]
    NoDefaultVfs,
    /// `sqlite3_vfs_register` failed with this code.
    #[error("registering the {VFS_NAME} VFS failed with SQLite code {0}")]
    Refused(c_int),
}

/// Registers the VFS (once per process; later calls return the first answer) and returns its
/// name. Connections opened with that name use it; others keep the default.
pub fn register() -> Result<&'static str, RegisterError> {
    static REGISTERED: OnceLock<Result<(), RegisterError>> = OnceLock::new();
    REGISTERED
        .get_or_init(register_now)
        .clone()
        .map(|()| VFS_NAME)
}

/// Writes to WAL files through this VFS, since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalWrites {
    /// Writes SQLite asked for.
    pub received: u64,
    /// Writes handed to the files.
    pub written: u64,
}

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// How many writes SQLite asked for and how many reached the files, in this process.
pub fn stats() -> WalWrites {
    WalWrites {
        received: RECEIVED.load(Ordering::Relaxed),
        written: WRITTEN.load(Ordering::Relaxed),
    }
}

/// The default VFS, as an address (set once, before the VFS is registered).
static BASE_VFS: OnceLock<usize> = OnceLock::new();

/// The default VFS that this one wraps.
fn base_vfs() -> *mut ffi::sqlite3_vfs {
    BASE_VFS.get().copied().unwrap_or(0) as *mut ffi::sqlite3_vfs
}

fn register_now() -> Result<(), RegisterError> {
    // SAFETY: with a null name, `sqlite3_vfs_find` initializes SQLite if needed and returns
    // the default VFS, or null.
    let base = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if base.is_null() {
        return Err(RegisterError::NoDefaultVfs);
    }
    // SAFETY: `base` points to a registered VFS, which SQLite never frees. Our copy keeps its
    // `pAppData` and its functions: those of the default VFS that read their VFS argument (the
    // unix one's `xFullPathname` reads `mxPathname`) find the same values in ours, and `open`
    // calls the default `xOpen` with the default VFS itself.
    let mut vfs = unsafe { ptr::read(base) };
    let own_size = c_int::try_from(std::mem::size_of::<MergedWal>()).unwrap_or(c_int::MAX);
    // Files other than the WAL are the default VFS's own, opened in the memory SQLite gives us.
    vfs.szOsFile = vfs.szOsFile.max(own_size);
    vfs.zName = VFS_NAME_C.as_ptr();
    vfs.pNext = ptr::null_mut();
    vfs.xOpen = Some(open);
    let _ = BASE_VFS.set(base as usize);
    let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    // SAFETY: `vfs` is a complete VFS that lives as long as the process, as SQLite requires.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(RegisterError::Refused(rc))
    }
}

/// The file object SQLite holds for a WAL opened through this VFS.
#[repr(C)]
struct MergedWal {
    /// What SQLite reads: our methods. Must come first.
    header: ffi::sqlite3_file,
    /// The WAL's state, owned (freed in `close`).
    wal: *mut GatheredWal,
}

/// A WAL file of the default VFS and the writes gathered for it.
struct GatheredWal {
    /// The default VFS's file object, in memory of the size it asks for, 8-byte aligned.
    inner: Box<[u64]>,
    /// Writes not yet handed to the file: consecutive bytes from `gathered_at`.
    gathered: Vec<u8>,
    /// Where `gathered` starts in the file.
    gathered_at: i64,
    /// The end of the furthest write seen since the log last started over: a commit header
    /// written before it rewrites an earlier frame's.
    high_water: i64,
    /// A commit header was gathered: the next write (its page) ends the commit.
    commit_pending: bool,
}

impl GatheredWal {
    fn new(inner_size: c_int) -> Self {
        let words = usize::try_from(inner_size).unwrap_or(0).div_ceil(8).max(1);
        Self {
            inner: vec![0; words].into_boxed_slice(),
            gathered: Vec::new(),
            gathered_at: 0,
            high_water: 0,
            commit_pending: false,
        }
    }

    /// The default VFS's file object.
    fn inner_file(&mut self) -> *mut ffi::sqlite3_file {
        self.inner.as_mut_ptr().cast()
    }

    /// The default VFS's methods for the file, once it is open.
    fn inner_methods(&mut self) -> Option<&'static ffi::sqlite3_io_methods> {
        let file = self.inner_file();
        // SAFETY: `inner` holds a file object the default VFS filled in (or zeroes before
        // that, which read as no methods). Its methods table is static in SQLite.
        unsafe { (*file).pMethods.as_ref() }
    }

    /// Writes `data` at `offset` straight to the file.
    fn write_through(&mut self, data: &[u8], offset: i64) -> c_int {
        let Some(write) = self.inner_methods().and_then(|m| m.xWrite) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let file = self.inner_file();
        let mut at = offset;
        for chunk in data.chunks(WRITE_CHUNK) {
            WRITTEN.fetch_add(1, Ordering::Relaxed);
            // `WRITE_CHUNK` fits in a `c_int`.
            let amount = chunk.len() as c_int;
            // SAFETY: an open file of the default VFS, and a buffer of `amount` bytes.
            let rc = unsafe { write(file, chunk.as_ptr().cast(), amount, at) };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            at += i64::from(amount);
        }
        ffi::SQLITE_OK
    }

    /// Hands what was gathered to the file. On failure it is dropped: SQLite abandons the
    /// transaction, whose frames are then garbage it will write over.
    fn write_gathered(&mut self) -> c_int {
        self.commit_pending = false;
        if self.gathered.is_empty() {
            return ffi::SQLITE_OK;
        }
        let gathered = std::mem::take(&mut self.gathered);
        let rc = self.write_through(&gathered, self.gathered_at);
        // The allocation is kept for the next commit.
        self.gathered = gathered;
        self.gathered.clear();
        rc
    }

    /// SQLite's write of `data` at `offset`.
    fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        RECEIVED.fetch_add(1, Ordering::Relaxed);
        let end = offset.saturating_add(i64::try_from(data.len()).unwrap_or(i64::MAX));
        if offset == 0 {
            // The log's header: the log starts over.
            self.high_water = 0;
        }
        let is_commit_header = data.len() == FRAME_HEADER && data[4..8] != [0; 4];
        let ends_commit = self.commit_pending;
        let gathered_end = self.gathered_at + self.gathered.len() as i64;
        if is_commit_header && offset < self.high_water.max(gathered_end) {
            // A rewritten commit header: nothing may follow it before SQLite publishes.
            let rc = self.write_gathered();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            self.commit_pending = true;
            return self.write_through(data, offset);
        }
        if !self.gathered.is_empty() && offset != gathered_end {
            let rc = self.write_gathered();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if self.gathered.is_empty() {
            self.gathered_at = offset;
        }
        self.gathered.extend_from_slice(data);
        self.high_water = self.high_water.max(end);
        if is_commit_header {
            self.commit_pending = true;
            return ffi::SQLITE_OK;
        }
        if ends_commit || self.gathered.len() >= MAX_GATHERED {
            return self.write_gathered();
        }
        ffi::SQLITE_OK
    }
}

/// The WAL's methods: version 1 (SQLite uses shared memory and mappings on the database file
/// only, never on its log).
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// `xOpen`: the default VFS's file, wrapped when it is a WAL.
unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = base_vfs();
    // SAFETY: `base` was set, from a VFS SQLite never frees, before ours was registered.
    let Some(base_open) = (unsafe { base.as_ref() }).and_then(|b| b.xOpen) else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // SAFETY: SQLite gave us `szOsFile` bytes at `file`, at least what the default needs.
        return unsafe { base_open(base, name, file, flags, out_flags) };
    }
    // SAFETY: as above; `base` is not null here.
    let mut wal = Box::new(GatheredWal::new(unsafe { (*base).szOsFile }));
    let inner = wal.inner_file();
    // SAFETY: `inner` has the default VFS's `szOsFile` bytes, 8-byte aligned.
    let rc = unsafe { base_open(base, name, inner, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        if let Some(close_inner) = wal.inner_methods().and_then(|m| m.xClose) {
            // SAFETY: the default VFS left methods on a failed open, so it expects a close.
            unsafe { close_inner(inner) };
        }
        // SAFETY: `file` is ours to fill in; no methods tells SQLite not to close it.
        unsafe { (*file).pMethods = ptr::null() };
        return rc;
    }
    let merged = MergedWal {
        header: ffi::sqlite3_file {
            pMethods: &WAL_METHODS,
        },
        wal: Box::into_raw(wal),
    };
    // SAFETY: `file` has at least `size_of::<MergedWal>()` bytes (our `szOsFile`), aligned for
    // a pointer as SQLite allocates file objects.
    unsafe { ptr::write(file.cast::<MergedWal>(), merged) };
    ffi::SQLITE_OK
}

/// The state of a WAL file opened by `open`.
///
/// # Safety
/// `file` must be a file object `open` filled in with `WAL_METHODS`, not yet closed.
unsafe fn wal_of<'a>(file: *mut ffi::sqlite3_file) -> &'a mut GatheredWal {
    // SAFETY: per the contract, `file` is a `MergedWal` whose `wal` is live; SQLite calls a
    // file's methods from one thread at a time.
    unsafe { &mut *(*file.cast::<MergedWal>()).wal }
}

/// Writes what was gathered, then runs `call` with the default VFS's file and methods.
///
/// # Safety
/// As [`wal_of`].
unsafe fn after_gathered(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(&'static ffi::sqlite3_io_methods, *mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    // SAFETY: passed on to our caller.
    let wal = unsafe { wal_of(file) };
    let rc = wal.write_gathered();
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    match wal.inner_methods() {
        Some(methods) => call(methods, wal.inner_file()),
        None => ffi::SQLITE_IOERR,
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once, after its last other call; `wal` came from
    // `Box::into_raw` in `open`.
    let mut wal = unsafe { Box::from_raw((*file.cast::<MergedWal>()).wal) };
    let written = wal.write_gathered();
    let inner = wal.inner_file();
    let closed = match wal.inner_methods().and_then(|m| m.xClose) {
        // SAFETY: the default VFS's open file, closed once.
        Some(close_inner) => unsafe { close_inner(inner) },
        None => ffi::SQLITE_OK,
    };
    // SAFETY: `file` is ours; no methods marks it closed.
    unsafe { (*file).pMethods = ptr::null() };
    if written != ffi::SQLITE_OK {
        written
    } else {
        closed
    }
}

/// The methods that first write what was gathered, then call the default VFS's method with
/// SQLite's own arguments (answering `$missing` where the default has none).
macro_rules! after_gathered_methods {
    ($($name:ident => $method:ident($($arg:ident: $ty:ty),*) or $missing:expr;)*) => {$(
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            // SAFETY: SQLite calls this on a file `open` wrapped, with arguments the default
            // method takes as they are.
            unsafe {
                after_gathered(file, |m, inner| match m.$method {
                    Some(f) => f(inner, $($arg),*),
                    None => $missing,
                })
            }
        }
    )*};
}

after_gathered_methods! {
    read => xRead(buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64)
        or ffi::SQLITE_IOERR_READ;
    truncate => xTruncate(size: ffi::sqlite3_int64) or ffi::SQLITE_IOERR_TRUNCATE;
    sync => xSync(flags: c_int) or ffi::SQLITE_IOERR_FSYNC;
    file_size => xFileSize(size: *mut ffi::sqlite3_int64) or ffi::SQLITE_IOERR_FSTAT;
    lock => xLock(level: c_int) or ffi::SQLITE_IOERR_LOCK;
    unlock => xUnlock(level: c_int) or ffi::SQLITE_IOERR_UNLOCK;
    check_reserved_lock => xCheckReservedLock(out: *mut c_int)
        or ffi::SQLITE_IOERR_CHECKRESERVEDLOCK;
    file_control => xFileControl(op: c_int, arg: *mut c_void) or ffi::SQLITE_NOTFOUND;
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `buf`, on a file `open` wrapped.
    let (wal, data) = unsafe {
        (
            wal_of(file),
            std::slice::from_raw_parts(buf.cast::<u8>(), len),
        )
    };
    wal.write(data, offset)
}

/// A property of the default VFS's file (asking writes nothing), or `missing`.
///
/// # Safety
/// As [`wal_of`].
unsafe fn property(
    file: *mut ffi::sqlite3_file,
    method: impl FnOnce(
        &ffi::sqlite3_io_methods,
    ) -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_file) -> c_int>,
    missing: c_int,
) -> c_int {
    // SAFETY: passed on to our caller.
    let wal = unsafe { wal_of(file) };
    let inner = wal.inner_file();
    match wal.inner_methods().and_then(method) {
        // SAFETY: the default VFS's open file.
        Some(f) => unsafe { f(inner) },
        None => missing,
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a file `open` wrapped.
    unsafe { property(file, |m| m.xSectorSize, 4096) }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a file `open` wrapped.
    unsafe { property(file, |m| m.xDeviceCharacteristics, 0) }
}
