
mod common;
mod web;
mod browser;
