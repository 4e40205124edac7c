
mod common;
