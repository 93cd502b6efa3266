//! Python pickles of plain data: a guarded reader that executes nothing,
//! and a writer Python 3 reads.
