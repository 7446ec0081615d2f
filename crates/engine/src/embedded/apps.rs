//! The apps the embedded writer serves: the one place an app's state joins the writer (a field
//! here and its entry in [`Apps::each`]).

use super::auctions::AuctionsWriter;
use super::cinema::CinemaWriter;
use super::deals::DealsWriter;
use super::social::SocialWriter;
use super::writer::AppWriter;

pub(crate) struct Apps {
    pub auctions: AuctionsWriter,
    pub cinema: CinemaWriter,
    pub deals: DealsWriter,
    pub social: SocialWriter,
}

impl Apps {
    /// Every app, for the batch's hooks.
    pub fn each(&mut self) -> [&mut dyn AppWriter; 4] {
        [&mut self.auctions, &mut self.cinema, &mut self.deals, &mut self.social]
    }
}
