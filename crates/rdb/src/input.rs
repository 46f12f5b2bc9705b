//! A byte source for decoding: counts the offset for error messages and keeps the running
//! CRC-64 of everything read, so a file's checksum is verified in the same pass.
//!
//! Lengths read from the stream are never trusted for allocation: a string of a claimed
//! length is read through `take`, so a corrupt huge length ends as a truncation error, not
//! as an attempt to allocate it.

use std::io::Read;

use crate::crc64;
use crate::error::{Error, Result};

pub(crate) struct Input<R> {
    inner: R,
    offset: u64,
    crc: u64,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R) -> Self {
        Input { inner, offset: 0, crc: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The CRC-64 of every byte consumed so far.
    pub(crate) fn crc(&self) -> u64 {
        self.crc
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>) -> Error {
        Error::Corrupt { offset: self.offset, what: what.into() }
    }

    fn io(&self, e: std::io::Error, what: &'static str) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Truncated { offset: self.offset, what }
        } else {
            Error::Io { offset: self.offset, source: e }
        }
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.crc = crc64::update(self.crc, buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.io(e, what)),
        }
    }

    pub(crate) fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf, what)?;
        Ok(buf)
    }

    pub(crate) fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.read_array::<1>(what)?[0])
    }

    /// Reads exactly `len` bytes, growing the buffer as data arrives.
    pub(crate) fn read_vec(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        let got = match (&mut self.inner).take(len).read_to_end(&mut out) {
            Ok(n) => n as u64,
            Err(e) => return Err(self.io(e, what)),
        };
        self.crc = crc64::update(self.crc, &out);
        self.offset += got;
        if got != len {
            return Err(Error::Truncated { offset: self.offset, what });
        }
        Ok(out)
    }
}
