console.log('pages');
