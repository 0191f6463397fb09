//! A registered function's codec with its types erased: how a pool builds the call frame of a task and decodes
//! its reply when all it knows is the function's type `F` (the [`Executor`](crate::Executor) trait has no serde
//! bounds). `Registry::register` builds one per function, with the serde impls of its argument and result; pools
//! find it by `TypeId::of::<F>()`. A function item's type has exactly one signature, so the argument a caller
//! passes for `F` is always of the type the codec expects.

use std::any::{Any, TypeId};

use super::Payload;
use super::pending::{decode, partial};
use super::protocol::{Call, FrameBuf, Status};
use super::registry::{check_zero_sized, installed, task_name};
use crate::Error;

/// Appends an argument given as `&dyn Any` to a frame: `None` if it is not of the registered type.
pub(crate) type EncodeAny = fn(&dyn Any, &mut FrameBuf) -> Option<Result<(), postcard::Error>>;

/// Decodes a reply's payload (named by the task's name in errors) into a boxed value of the registered type.
pub(crate) type DecodeAny = fn(&str, &[u8]) -> Result<Box<dyn Any + Send>, Error>;

/// A registered function's codec.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    /// The name the function is registered (and called) by.
    pub(crate) name: &'static str,
    /// Appends an `&A`.
    encode_one: EncodeAny,
    /// Appends an `&Vec<A>` (a `map` chunk).
    encode_chunk: EncodeAny,
    /// Decodes an `R` (as `Box<R>`).
    decode_one: DecodeAny,
    /// Decodes a chunk's reply (as `Box<Partial<R>>`).
    decode_chunk: DecodeAny,
}

impl Codec {
    /// The codec of a function named `name` from `A` to `R`.
    pub(crate) fn new<A: Payload, R: Payload>(name: &'static str) -> Self {
        Codec {
            name,
            encode_one: encode_as::<A>,
            encode_chunk: encode_as::<Vec<A>>,
            decode_one: decode_one::<R>,
            decode_chunk: decode_chunk::<R>,
        }
    }

    /// The call frame of task `id` (at most `max_frame` bytes of body): its argument is an `&A`, or an `&Vec<A>`
    /// for a `chunk`. [`Error::Serialization`] or [`Error::Protocol`] (too large) are the task's own failure;
    /// [`Error::InvalidArgument`] means the argument is not of the registered type.
    pub(crate) fn call(
        &self,
        id: u64,
        chunk: bool,
        arg: &dyn Any,
        max_frame: usize,
    ) -> Result<Vec<u8>, Error> {
        let name = self.name;
        let mut frame = FrameBuf::new(&Call { id, name, chunk })
            .map_err(|error| Error::Serialization(error.to_string()))?;
        let encode = if chunk {
            self.encode_chunk
        } else {
            self.encode_one
        };
        match encode(arg, &mut frame) {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "the argument given for `{name}` is not of the type it takes"
                )));
            }
            Some(Err(error)) => {
                return Err(Error::Serialization(format!(
                    "could not encode the argument of `{name}`: {error}"
                )));
            }
            Some(Ok(())) => {}
        }
        frame.finish(max_frame).map_err(|size| {
            Error::Protocol(format!(
                "the argument of `{name}` takes {size} bytes, more than the maximum frame size of \
                 {max_frame} bytes"
            ))
        })
    }

    /// Decodes the reply to a call built by [`call`](Self::call) with the same `chunk`: a `Box<R>`, or a
    /// `Box<Partial<R>>` for a chunk.
    pub(crate) fn decoder(&self, chunk: bool) -> DecodeAny {
        if chunk {
            self.decode_chunk
        } else {
            self.decode_one
        }
    }
}

fn encode_as<T: serde::Serialize + 'static>(
    value: &dyn Any,
    out: &mut FrameBuf,
) -> Option<Result<(), postcard::Error>> {
    Some(out.push(value.downcast_ref::<T>()?))
}

fn decode_one<R: Payload>(name: &str, payload: &[u8]) -> Result<Box<dyn Any + Send>, Error> {
    decode::<R>(name, payload).map(|value| Box::new(value) as Box<dyn Any + Send>)
}

fn decode_chunk<R: Payload>(name: &str, payload: &[u8]) -> Result<Box<dyn Any + Send>, Error> {
    decode::<(Vec<R>, Option<Status>)>(name, payload)
        .map(|reply| Box::new(partial(reply)) as Box<dyn Any + Send>)
}

/// The codec of `F`, a function registered in this process: [`Error::InvalidArgument`] if `F` is not a function
/// item or a closure capturing nothing, [`Error::UnknownTask`] naming it if it is not registered, and
/// [`Error::InvalidState`] if no registry is installed.
pub(crate) fn codec_of<F: 'static>() -> Result<&'static Codec, Error> {
    check_zero_sized::<F>()?;
    installed()?
        .codecs
        .get(&TypeId::of::<F>())
        .ok_or_else(|| Error::UnknownTask(task_name::<F>().to_owned()))
}
