"""Training texts and held-out prompts for the steering benchmark on a small instruction-tuned model.

Two attributes, each with natural English sentences built from templates (many subjects, situations,
verbs and sentence shapes; first and third person; past, present and future):

* sentiment: ``sentiment_texts()`` gives "positive" (happy, pleased, praising), "negative" (unhappy,
  angry, disappointed) and "neutral" (factual, no emotion) sentences. All three classes cover the same
  15 everyday topics (travel, work, weather, family, friends, sports, technology, shopping, school, city
  life, pets, music, health, movies, home repairs) equally often, and none mentions food or drink, so
  the sentiment direction is not confounded with the food one.
* food: ``food_texts()`` gives "food" (cooking, baking, eating, meals, ingredients, restaurants, drinks)
  and "other" (the 15 topics above) sentences. Both classes are a third positive, a third negative and
  a third neutral, and both come from the same templates, so they differ in topic only and have the
  same length distribution; "other" shares no sentence with ``sentiment_texts()``.

Every class is drawn round-robin over its topics and its templates (at least 12 per class) with fixed
seeds, deduplicated, and shuffled by a fixed seed, so the lists are identical on every call and every
Python version. ``PROMPTS_NEUTRAL``, ``PROMPTS_POSITIVE`` and ``PROMPTS_FOOD`` are held-out sentence
openers for generation; none occurs inside a training sentence.

Run the module to print the counts and examples and check all of this.
"""
from __future__ import annotations

import functools
import random
import re
from typing import NamedTuple


class _Topic(NamedTuple):
    objects: tuple[str, ...]  # singular noun phrases that read well in the present tense ("X is ...")
    events: tuple[str, ...]  # singular noun phrases for one-off events, used in the past tense only
    acts: tuple[tuple[str, str, str], ...]  # (base, past, -ing) verb phrases, with no "my"
    habits: tuple[str, ...]  # -ing phrases for things done again and again, with no time in them
    facts: tuple[str, ...]  # emotion-free statements, lowercase unless they start with a name


_OTHER_TOPICS: dict[str, _Topic] = {
    "travel": _Topic(
        ("the night train to Vienna", "the hotel by the harbor", "the airport in our city",
         "the ferry to the islands", "our rental car"),
        ("the flight to Lisbon", "our trip to the mountains", "the bus tour of the old town",
         "the long drive to the coast"),
        (("take the train through the Alps", "took the train through the Alps",
          "taking the train through the Alps"),
         ("spend a day in Rome", "spent a day in Rome", "spending a day in Rome"),
         ("fly to Chicago for a conference", "flew to Chicago for a conference",
          "flying to Chicago for a conference"),
         ("book a cabin by the lake", "booked a cabin by the lake", "booking a cabin by the lake"),
         ("drive along the coast to Portland", "drove along the coast to Portland",
          "driving along the coast to Portland"),
         ("catch the late ferry to the islands", "caught the late ferry to the islands",
          "catching the late ferry to the islands")),
        ("taking long train rides", "exploring a new city", "planning the next trip",
         "driving along the coast"),
        ("the train from Boston to New York takes a little under four hours",
         "the ferry to the islands leaves the harbor twice a day in winter",
         "most flights from the regional airport stop in Denver or Atlanta",
         "the old town can be crossed on foot in about half an hour",
         "passports must be valid for six months for that trip",
         "the hotel by the harbor has forty rooms on three floors"),
    ),
    "work": _Topic(
        ("the new manager", "the quarterly planning process", "my new desk at the office",
         "the project tracking system", "the new office building"),
        ("the quarterly review meeting", "the product launch in the spring", "the team retreat",
         "my performance review"),
        (("present the budget to the board", "presented the budget to the board",
          "presenting the budget to the board"),
         ("work late on the sales report", "worked late on the sales report",
          "working late on the sales report"),
         ("start a new role in the design team", "started a new role in the design team",
          "starting a new role in the design team"),
         ("finish the client proposal", "finished the client proposal", "finishing the client proposal"),
         ("train two new hires", "trained two new hires", "training two new hires"),
         ("move to a desk near the window", "moved to a desk near the window",
          "moving to a desk near the window")),
        ("solving tricky problems at work", "leading the planning meeting", "mentoring new colleagues",
         "closing out a big project"),
        ("the office is open from eight in the morning until six in the evening",
         "the team meeting is held on the first Monday of each month",
         "the company has about two hundred employees in three cities",
         "expense reports are due on the last Friday of the month",
         "new employees spend their first week in training sessions",
         "the sales report covers the period from January to March"),
    ),
    "weather": _Topic(
        ("the weather this spring", "the forecast for the weekend", "the wind along the coast",
         "the climate in this valley"),
        ("the storm on Friday night", "the first snow of the winter", "the long heat wave in July",
         "the weather during our hike"),
        (("walk home in the pouring rain", "walked home in the pouring rain",
          "walking home in the pouring rain"),
         ("shovel snow off the driveway", "shoveled snow off the driveway",
          "shoveling snow off the driveway"),
         ("watch the thunderstorm from the porch", "watched the thunderstorm from the porch",
          "watching the thunderstorm from the porch"),
         ("check the forecast before the hike", "checked the forecast before the hike",
          "checking the forecast before the hike"),
         ("clear the ice from the car windows", "cleared the ice from the car windows",
          "clearing the ice from the car windows"),
         ("wait out the hailstorm in the garage", "waited out the hailstorm in the garage",
          "waiting out the hailstorm in the garage")),
        ("walking in the rain", "watching storms roll in", "checking the weather radar",
         "spending a windy day at the beach"),
        ("the forecast calls for rain on Tuesday and clear skies by Thursday",
         "the temperature dropped to two degrees below zero overnight",
         "about ten centimeters of snow fell in the city on Sunday",
         "the wind is expected to reach forty kilometers per hour",
         "July is usually the warmest month in this region",
         "the weather service issued a storm warning for the coast"),
    ),
    "family": _Topic(
        ("my brother's new house", "the family group chat", "our weekly video call with Grandma",
         "my parents' new apartment"),
        ("the family reunion in June", "my cousin's wedding", "the visit from my in-laws",
         "my niece's graduation"),
        (("visit the grandparents in the countryside", "visited the grandparents in the countryside",
          "visiting the grandparents in the countryside"),
         ("help a cousin move into a new apartment", "helped a cousin move into a new apartment",
          "helping a cousin move into a new apartment"),
         ("plan a surprise party for Grandma", "planned a surprise party for Grandma",
          "planning a surprise party for Grandma"),
         ("look through old family photos", "looked through old family photos",
          "looking through old family photos"),
         ("drive the kids to their first day of school", "drove the kids to their first day of school",
          "driving the kids to their first day of school"),
         ("visit the in-laws in their new apartment", "visited the in-laws in their new apartment",
          "visiting the in-laws in their new apartment")),
        ("spending time with my grandparents", "looking through old family photos",
         "playing board games with my nephews", "calling my parents"),
        ("my grandparents have lived in the same house for forty years",
         "my brother and his wife have two children and a dog",
         "the family reunion takes place every other summer",
         "my cousin's wedding was held in a small church outside town",
         "my parents moved to the coast after they retired",
         "we have relatives in three different countries"),
    ),
    "friends": _Topic(
        ("my oldest friend", "our monthly game night", "the group of friends from my old job",
         "my friendship with my college roommate"),
        ("the reunion with my old school friends", "the birthday party at Sam's place",
         "the camping weekend with friends", "my best friend's farewell party"),
        (("catch up with an old friend from school", "caught up with an old friend from school",
          "catching up with an old friend from school"),
         ("go hiking with a few friends", "went hiking with a few friends",
          "going hiking with a few friends"),
         ("help a friend paint his apartment", "helped a friend paint his apartment",
          "helping a friend paint his apartment"),
         ("host a board game night", "hosted a board game night", "hosting a board game night"),
         ("call an old roommate after months of silence", "called an old roommate after months of silence",
          "calling an old roommate after months of silence"),
         ("visit a friend in Denver", "visited a friend in Denver", "visiting a friend in Denver")),
        ("playing cards with my friends", "hiking with friends", "hosting board game nights",
         "catching up with old friends"),
        ("our game night takes place on the second Thursday of every month",
         "I have known my best friend since we were six years old",
         "most of my college friends now live in other cities",
         "the group chat has eleven members from our old class",
         "Sam moved to a new apartment across the river in May",
         "we meet at the community center when the weather turns cold"),
    ),
    "sports": _Topic(
        ("our local soccer team", "the new swimming pool downtown", "the tennis club near my house",
         "the new running track at the park", "the referee in our league"),
        ("the championship final on Sunday", "the half marathon in April",
         "our last basketball game of the season", "the cycling race through the hills"),
        (("run a half marathon", "ran a half marathon", "running a half marathon"),
         ("play tennis at the park", "played tennis at the park", "playing tennis at the park"),
         ("watch the championship final at a friend's house",
          "watched the championship final at a friend's house",
          "watching the championship final at a friend's house"),
         ("swim thirty laps at the pool", "swam thirty laps at the pool", "swimming thirty laps at the pool"),
         ("coach the youth soccer team in a tournament", "coached the youth soccer team in a tournament",
          "coaching the youth soccer team in a tournament"),
         ("ride a bike up the mountain pass", "rode a bike up the mountain pass",
          "riding a bike up the mountain pass")),
        ("playing tennis with my neighbor", "running along the river", "watching football with friends",
         "swimming laps at the pool"),
        ("the soccer season runs from August until the end of May",
         "a half marathon is a little over twenty-one kilometers long",
         "the tennis club has six outdoor courts and two indoor courts",
         "the final will be broadcast on channel four at eight o'clock",
         "each team in the league plays twenty games per season",
         "the pool opens at six in the morning on weekdays"),
    ),
    "technology": _Topic(
        ("the new laptop", "the latest phone update", "the smart thermostat in the hallway",
         "the new photo editing app", "our home wifi network"),
        ("the software upgrade at work", "the switch to a new phone",
         "the video call setup for the conference",
         "the data migration at the office"),
        (("set up the new router", "set up the new router", "setting up the new router"),
         ("upgrade the operating system", "upgraded the operating system", "upgrading the operating system"),
         ("build a small website for the club", "built a small website for the club",
          "building a small website for the club"),
         ("replace the cracked phone screen", "replaced the cracked phone screen",
          "replacing the cracked phone screen"),
         ("install a new photo editing app", "installed a new photo editing app",
          "installing a new photo editing app"),
         ("back up the old family photos to the cloud", "backed up the old family photos to the cloud",
          "backing up the old family photos to the cloud")),
        ("tinkering with old computers", "building small websites", "trying out new apps",
         "setting up gadgets around the house"),
        ("the new laptop has sixteen gigabytes of memory and a larger screen",
         "the phone update is about two gigabytes and takes twenty minutes to install",
         "the router supports both wired and wireless connections",
         "the app stores its files in a folder on the desktop",
         "the operating system receives security patches once a month",
         "the battery lasts about ten hours with normal use"),
    ),
    "shopping": _Topic(
        ("the new shopping center downtown", "my new winter coat", "the bookstore on Elm Street",
         "the online store I ordered from", "the checkout process on that website"),
        ("the big holiday sale at the mall", "the trip to the outlet stores", "my search for a new sofa",
         "the return at the electronics store"),
        (("buy a new winter coat", "bought a new winter coat", "buying a new winter coat"),
         ("browse the bookstore on Elm Street", "browsed the bookstore on Elm Street",
          "browsing the bookstore on Elm Street"),
         ("order a pair of running shoes online", "ordered a pair of running shoes online",
          "ordering a pair of running shoes online"),
         ("return a jacket to the department store", "returned a jacket to the department store",
          "returning a jacket to the department store"),
         ("look for a birthday present at the mall", "looked for a birthday present at the mall",
          "looking for a birthday present at the mall"),
         ("shop for a new sofa", "shopped for a new sofa", "shopping for a new sofa")),
        ("browsing used bookstores", "shopping for vintage clothes",
         "looking for bargains at the flea market",
         "picking out gifts for friends"),
        ("the shopping center has about eighty stores on two levels",
         "the bookstore on Elm Street is open until nine on weekdays",
         "online orders usually arrive within three to five business days",
         "returns are accepted within thirty days with a receipt",
         "the holiday sale starts on the last Friday of November",
         "the department store is on the corner of Fifth Avenue and Main Street"),
    ),
    "school": _Topic(
        ("the new math teacher", "my daughter's new school", "the chemistry course this semester",
         "the school library", "the online homework system"),
        ("the history exam on Monday", "the parent-teacher meeting", "the school science fair",
         "my first semester at college"),
        (("study for the chemistry final", "studied for the chemistry final",
          "studying for the chemistry final"),
         ("give a presentation in history class", "gave a presentation in history class",
          "giving a presentation in history class"),
         ("finish the science fair project", "finished the science fair project",
          "finishing the science fair project"),
         ("help the kids with their math homework", "helped the kids with their math homework",
          "helping the kids with their math homework"),
         ("write a ten-page essay on the French Revolution",
          "wrote a ten-page essay on the French Revolution",
          "writing a ten-page essay on the French Revolution"),
         ("sign up for a night class in Spanish", "signed up for a night class in Spanish",
          "signing up for a night class in Spanish")),
        ("studying in the library", "learning new languages", "helping kids with homework",
         "reading for my literature class"),
        ("the semester begins in the first week of September",
         "the history exam covers chapters four through nine",
         "the school has about six hundred students and forty teachers",
         "classes start at eight fifteen and end at three",
         "the library is open until ten during exam week",
         "the science fair projects are due on the twelfth of March"),
    ),
    "city life": _Topic(
        ("the subway system here", "the new bike lane downtown", "the park near our apartment",
         "the traffic on the main avenue", "our neighborhood"),
        ("the street festival in our district", "the construction on our block",
         "the parade through downtown",
         "the power outage across the east side"),
        (("take the subway across town", "took the subway across town", "taking the subway across town"),
         ("walk through the park downtown", "walked through the park downtown",
          "walking through the park downtown"),
         ("wait for the bus on Main Street", "waited for the bus on Main Street",
          "waiting for the bus on Main Street"),
         ("ride a bike along the new bike lane", "rode a bike along the new bike lane",
          "riding a bike along the new bike lane"),
         ("move into an apartment near the city center", "moved into an apartment near the city center",
          "moving into an apartment near the city center"),
         ("visit the new art museum downtown", "visited the new art museum downtown",
          "visiting the new art museum downtown")),
        ("walking through quiet neighborhoods", "taking the subway everywhere",
         "exploring different parts of town", "cycling along the river path"),
        ("the subway runs every six minutes during rush hour",
         "the city has about two million residents",
         "the new bike lane covers twelve kilometers of downtown streets",
         "the park near our apartment closes at midnight",
         "the bus on Main Street stops at every corner",
         "construction on the bridge is scheduled to end in October"),
    ),
    "pets": _Topic(
        ("our new puppy", "my old cat", "the dog park near our building", "the animal shelter on Oak Street",
         "our neighbor's parrot"),
        ("the trip to the vet", "the first night with the new kitten", "the dog training class",
         "the puppy's first walk in the snow"),
        (("take the dog to the vet", "took the dog to the vet", "taking the dog to the vet"),
         ("adopt a kitten from the shelter", "adopted a kitten from the shelter",
          "adopting a kitten from the shelter"),
         ("teach the puppy to sit", "taught the puppy to sit", "teaching the puppy to sit"),
         ("walk the dog along the river", "walked the dog along the river",
          "walking the dog along the river"),
         ("clean out the rabbit's cage", "cleaned out the rabbit's cage", "cleaning out the rabbit's cage"),
         ("brush the long-haired cat", "brushed the long-haired cat", "brushing the long-haired cat")),
        ("walking the dog along the river", "playing with the cat", "training the puppy",
         "volunteering at the animal shelter"),
        ("our dog is a four-year-old border collie",
         "the cat sleeps for about sixteen hours a day",
         "the shelter on Oak Street has about fifty dogs and thirty cats",
         "the vet recommends a checkup for the dog once a year",
         "the dog park is open from sunrise to sunset",
         "our rabbit lives in a large cage in the living room"),
    ),
    "music": _Topic(
        ("the new album from that indie band", "the local choir", "my old guitar",
         "the jazz station on the radio",
         "the concert hall downtown"),
        ("the concert in the park", "the piano recital", "the choir rehearsal on Thursday",
         "the music festival in August"),
        (("practice the piano for an hour", "practiced the piano for an hour",
          "practicing the piano for an hour"),
         ("go to a jazz concert downtown", "went to a jazz concert downtown",
          "going to a jazz concert downtown"),
         ("learn a new song on the guitar", "learned a new song on the guitar",
          "learning a new song on the guitar"),
         ("sing a solo with the community choir", "sang a solo with the community choir",
          "singing a solo with the community choir"),
         ("listen to the new album from start to finish", "listened to the new album from start to finish",
          "listening to the new album from start to finish"),
         ("play drums with a local band", "played drums with a local band",
          "playing drums with a local band")),
        ("playing the guitar", "listening to old records", "singing in the choir", "going to live concerts"),
        ("the concert starts at eight and lasts about two hours",
         "the new album has twelve songs and runs about forty minutes",
         "the choir rehearses every Thursday in the school auditorium",
         "the music festival takes place over three days in August",
         "the piano in the living room was built in 1962",
         "the band has four members and formed in 2015"),
    ),
    "health": _Topic(
        ("my new exercise routine", "the physical therapy for my knee", "the clinic on Park Avenue",
         "my sleep schedule"),
        ("my annual checkup", "the flu shot appointment", "the recovery after my knee surgery",
         "the eye exam at the optometrist"),
        (("go for a checkup at the clinic", "went for a checkup at the clinic",
          "going for a checkup at the clinic"),
         ("start a new exercise routine", "started a new exercise routine",
          "starting a new exercise routine"),
         ("get a flu shot at the pharmacy", "got a flu shot at the pharmacy",
          "getting a flu shot at the pharmacy"),
         ("book an appointment with a new dentist", "booked an appointment with a new dentist",
          "booking an appointment with a new dentist"),
         ("see a physical therapist about a sore knee", "saw a physical therapist about a sore knee",
          "seeing a physical therapist about a sore knee"),
         ("walk ten thousand steps around the neighborhood",
          "walked ten thousand steps around the neighborhood",
          "walking ten thousand steps around the neighborhood")),
        ("stretching before work", "going to bed early", "walking ten thousand steps",
         "doing yoga in the living room"),
        ("adults are advised to get between seven and nine hours of sleep",
         "the clinic on Park Avenue opens at seven thirty on weekdays",
         "the flu shot is offered every year starting in October",
         "the physical therapy sessions last about forty-five minutes",
         "the doctor recommends thirty minutes of exercise on most days",
         "my annual checkup is scheduled for the second week of May"),
    ),
    "movies": _Topic(
        ("the new spy thriller", "the old cinema on Main Street", "the streaming service we use",
         "the latest superhero movie", "the director's new film"),
        ("the premiere of the new animated film", "the movie marathon on Saturday",
         "the film festival downtown", "the documentary we watched on Sunday"),
        (("watch the new spy thriller", "watched the new spy thriller", "watching the new spy thriller"),
         ("go to the late showing at the cinema", "went to the late showing at the cinema",
          "going to the late showing at the cinema"),
         ("rewatch the whole trilogy", "rewatched the whole trilogy", "rewatching the whole trilogy"),
         ("see a documentary about deep sea creatures", "saw a documentary about deep sea creatures",
          "seeing a documentary about deep sea creatures"),
         ("attend the film festival downtown", "attended the film festival downtown",
          "attending the film festival downtown"),
         ("stream an old black and white movie", "streamed an old black and white movie",
          "streaming an old black and white movie")),
        ("watching old movies", "going to the cinema alone", "discovering foreign films",
         "rewatching classic comedies"),
        ("the new spy thriller runs for about two hours and ten minutes",
         "the old cinema on Main Street has three screens",
         "the film festival shows over a hundred films in one week",
         "the documentary was filmed over four years in the Pacific",
         "the late showing starts at ten fifteen in the evening",
         "the director's new film opens in theaters on Friday"),
    ),
    "home repairs": _Topic(
        ("the new roof", "the plumber we hired", "the old furnace in the basement", "the renovated bathroom",
         "the new bedroom window"),
        ("the repair of the garden fence", "the bathroom renovation", "the repainting of the hallway",
         "the installation of the new water heater"),
        (("fix the leaking faucet in the bathroom", "fixed the leaking faucet in the bathroom",
          "fixing the leaking faucet in the bathroom"),
         ("repaint the bedroom a pale blue", "repainted the bedroom a pale blue",
          "repainting the bedroom a pale blue"),
         ("replace the broken window in the garage", "replaced the broken window in the garage",
          "replacing the broken window in the garage"),
         ("patch the hole in the hallway wall", "patched the hole in the hallway wall",
          "patching the hole in the hallway wall"),
         ("install new shelves in the living room", "installed new shelves in the living room",
          "installing new shelves in the living room"),
         ("repair the fence in the backyard", "repaired the fence in the backyard",
          "repairing the fence in the backyard")),
        ("fixing things around the house", "repainting old furniture", "building shelves in the garage",
         "working on the old house"),
        ("the roof was last replaced about twenty years ago",
         "the plumber charges a fixed fee for each visit",
         "the bathroom renovation is expected to take three weeks",
         "the hardware store sells paint in over two hundred colors",
         "the new water heater holds about fifty gallons",
         "the fence around the backyard is made of cedar boards"),
    ),
}

_FOOD_TOPICS: dict[str, _Topic] = {
    "home cooking": _Topic(
        ("my grandmother's lentil soup", "the new cast iron pan", "the vegetable curry I make on Sundays",
         "our slow cooker", "the family recipe for chili"),
        ("the dinner I cooked for my in-laws", "the roast chicken for the holidays",
         "my first attempt at homemade pasta", "the stew we made for the potluck"),
        (("cook a big pot of chili", "cooked a big pot of chili", "cooking a big pot of chili"),
         ("make fresh pasta from scratch", "made fresh pasta from scratch",
          "making fresh pasta from scratch"),
         ("roast a whole chicken with garlic", "roasted a whole chicken with garlic",
          "roasting a whole chicken with garlic"),
         ("try a new recipe for vegetable curry", "tried a new recipe for vegetable curry",
          "trying a new recipe for vegetable curry"),
         ("chop vegetables for a stir fry", "chopped vegetables for a stir fry",
          "chopping vegetables for a stir fry"),
         ("cook dinner for six guests", "cooked dinner for six guests", "cooking dinner for six guests")),
        ("cooking dinner for friends", "trying new recipes", "making soup from scratch",
         "chopping vegetables while the radio plays"),
        ("the chili recipe calls for two cans of beans and a pound of ground beef",
         "the lentil soup needs to simmer for about forty minutes",
         "a whole chicken usually roasts for about ninety minutes",
         "fresh pasta cooks in two or three minutes",
         "the curry uses coconut milk, ginger, and chickpeas",
         "the stew recipe serves six people and takes an hour to prepare"),
    ),
    "baking": _Topic(
        ("the sourdough bread from our oven", "my sister's chocolate cake", "the apple pie recipe",
         "the cinnamon bread from the corner bakery", "the new stand mixer for baking"),
        ("the bake sale at school", "my first loaf of sourdough", "the birthday cake I baked for my son",
         "the cookie baking marathon in December"),
        (("bake a loaf of sourdough bread", "baked a loaf of sourdough bread",
          "baking a loaf of sourdough bread"),
         ("make a chocolate cake for a birthday", "made a chocolate cake for a birthday",
          "making a chocolate cake for a birthday"),
         ("roll out dough for an apple pie", "rolled out dough for an apple pie",
          "rolling out dough for an apple pie"),
         ("frost three dozen cupcakes", "frosted three dozen cupcakes", "frosting three dozen cupcakes"),
         ("bake cinnamon rolls for the neighbors", "baked cinnamon rolls for the neighbors",
          "baking cinnamon rolls for the neighbors"),
         ("try a gluten-free muffin recipe", "tried a gluten-free muffin recipe",
          "trying a gluten-free muffin recipe")),
        ("baking bread at home", "decorating cookies", "making fruit pies", "kneading bread dough by hand"),
        ("sourdough bread needs to rise for at least eight hours",
         "the cake recipe uses three eggs, two cups of flour, and a cup of sugar",
         "the bakery on the corner opens at six every morning",
         "muffins bake for about twenty minutes at 180 degrees",
         "the pie crust needs to chill in the fridge for an hour",
         "a standard loaf of bread uses about five hundred grams of flour"),
    ),
    "restaurants": _Topic(
        ("the new Thai restaurant downtown", "the pizza place on our street",
         "the sushi bar near the station",
         "the waiter at our usual diner", "the tasting menu at the French bistro"),
        ("our anniversary dinner at the steakhouse", "the brunch at the hotel restaurant",
         "the team lunch at the taco place", "the dinner at the seafood restaurant by the pier"),
        (("eat at the new Thai restaurant downtown", "ate at the new Thai restaurant downtown",
          "eating at the new Thai restaurant downtown"),
         ("order the seafood pasta at the Italian place", "ordered the seafood pasta at the Italian place",
          "ordering the seafood pasta at the Italian place"),
         ("try the tasting menu at the French bistro", "tried the tasting menu at the French bistro",
          "trying the tasting menu at the French bistro"),
         ("book a table for eight at the steakhouse", "booked a table for eight at the steakhouse",
          "booking a table for eight at the steakhouse"),
         ("have brunch at the hotel restaurant", "had brunch at the hotel restaurant",
          "having brunch at the hotel restaurant"),
         ("get takeout from the pizza place", "got takeout from the pizza place",
          "getting takeout from the pizza place")),
        ("eating out with friends", "trying new restaurants", "ordering dessert after dinner",
         "sitting at the sushi bar"),
        ("the Thai restaurant serves lunch from eleven until three",
         "the steakhouse takes reservations up to two weeks in advance",
         "the pizza place delivers within a three-kilometer radius",
         "the tasting menu at the bistro has seven courses",
         "the sushi bar seats about twenty customers at the counter",
         "the diner on the corner serves breakfast all day"),
    ),
    "breakfast": _Topic(
        ("the breakfast special at the corner diner", "my usual bowl of oatmeal",
         "the breakfast buffet at the hotel", "our Sunday omelet", "the granola from the farmers market"),
        ("the breakfast before the wedding", "the Sunday brunch with my parents",
         "the morning we made waffles for the kids", "the hotel breakfast on our last day"),
        (("make pancakes for the kids", "made pancakes for the kids", "making pancakes for the kids"),
         ("fry eggs and bacon for everyone", "fried eggs and bacon for everyone",
          "frying eggs and bacon for everyone"),
         ("eat a bowl of oatmeal with berries", "ate a bowl of oatmeal with berries",
          "eating a bowl of oatmeal with berries"),
         ("cook omelets for the whole family", "cooked omelets for the whole family",
          "cooking omelets for the whole family"),
         ("toast bagels with cream cheese", "toasted bagels with cream cheese",
          "toasting bagels with cream cheese"),
         ("blend a banana smoothie before work", "blended a banana smoothie before work",
          "blending a banana smoothie before work")),
        ("making pancakes on a slow morning", "eating a long breakfast", "cooking eggs for the family",
         "trying new kinds of cereal"),
        ("the diner serves pancakes with maple syrup and fresh berries",
         "a bowl of oatmeal takes about five minutes to cook",
         "the hotel breakfast buffet is open from six thirty to ten",
         "our omelets usually have cheese, peppers, and onions",
         "the granola contains oats, almonds, and dried cranberries",
         "the waffle recipe makes about eight waffles"),
    ),
    "drinks": _Topic(
        ("the coffee at the new cafe", "my morning cup of green tea", "the lemonade at the county fair",
         "the wine from the local vineyard", "the espresso machine at work"),
        ("the wine tasting at the vineyard", "the coffee tasting class", "the smoothie I ordered at the gym",
         "the hot chocolate after sledding"),
        (("brew a pot of coffee", "brewed a pot of coffee", "brewing a pot of coffee"),
         ("make fresh lemonade for the party", "made fresh lemonade for the party",
          "making fresh lemonade for the party"),
         ("order a latte at the new cafe", "ordered a latte at the new cafe",
          "ordering a latte at the new cafe"),
         ("taste three red wines at the vineyard", "tasted three red wines at the vineyard",
          "tasting three red wines at the vineyard"),
         ("drink a cup of herbal tea", "drank a cup of herbal tea", "drinking a cup of herbal tea"),
         ("mix a pitcher of iced tea", "mixed a pitcher of iced tea", "mixing a pitcher of iced tea")),
        ("drinking coffee on the porch", "brewing a fresh pot of tea", "trying new coffee beans",
         "making fruit smoothies"),
        ("the cafe roasts its own coffee beans every Tuesday",
         "a cup of green tea steeps for about three minutes",
         "the lemonade is made with fresh lemons, water, and sugar",
         "the vineyard produces about ten thousand bottles of wine a year",
         "the espresso machine makes two drinks at a time",
         "the smoothie has spinach, banana, and almond milk"),
    ),
    "ingredients": _Topic(
        ("the vegetable stand at the farmers market", "the tomato crop from our garden",
         "the cheese shop on the corner",
         "the herb garden on the windowsill", "the grocery store near our house"),
        ("the strawberry picking trip", "the weekly grocery run", "the visit to the fish market",
         "the harvest from our vegetable garden"),
        (("buy fresh vegetables at the farmers market", "bought fresh vegetables at the farmers market",
          "buying fresh vegetables at the farmers market"),
         ("pick strawberries at a farm outside town", "picked strawberries at a farm outside town",
          "picking strawberries at a farm outside town"),
         ("plant tomatoes and basil in the garden", "planted tomatoes and basil in the garden",
          "planting tomatoes and basil in the garden"),
         ("shop for groceries for the week", "shopped for groceries for the week",
          "shopping for groceries for the week"),
         ("choose a few cheeses at the cheese shop", "chose a few cheeses at the cheese shop",
          "choosing a few cheeses at the cheese shop"),
         ("buy salmon at the fish market", "bought salmon at the fish market",
          "buying salmon at the fish market")),
        ("shopping for vegetables at the farmers market", "growing herbs on the windowsill",
         "picking fruit at local farms",
         "comparing olive oils at the grocery store"),
        ("the farmers market sells vegetables from about thirty local farms",
         "tomatoes need at least six hours of sun a day to ripen",
         "the cheese shop carries more than a hundred kinds of cheese",
         "the grocery store restocks fresh vegetables every morning",
         "strawberry season here lasts from late May to early July",
         "the fish market gets deliveries of fresh fish from the harbor at dawn"),
    ),
    "street food": _Topic(
        ("the taco truck near my office", "the noodle stand at the night market",
         "the sandwich shop by the station",
         "the food court at the mall", "the popcorn at the cinema"),
        ("the street food festival", "the late-night pizza order", "the picnic in the park",
         "the barbecue at my neighbor's house"),
        (("grab tacos from the food truck", "grabbed tacos from the food truck",
          "grabbing tacos from the food truck"),
         ("order noodles from the night market", "ordered noodles from the night market",
          "ordering noodles from the night market"),
         ("pack sandwiches for a picnic", "packed sandwiches for a picnic",
          "packing sandwiches for a picnic"),
         ("grill burgers in the backyard", "grilled burgers in the backyard",
          "grilling burgers in the backyard"),
         ("share a large pizza with friends", "shared a large pizza with friends",
          "sharing a large pizza with friends"),
         ("buy a hot pretzel from a street vendor", "bought a hot pretzel from a street vendor",
          "buying a hot pretzel from a street vendor")),
        ("grabbing tacos from the food truck", "eating street food", "grilling burgers in the backyard",
         "packing picnics for the park"),
        ("the taco truck parks near the office every weekday from eleven to two",
         "the night market has about forty food stalls",
         "a large pizza from that shop has eight slices",
         "the sandwich shop makes about three hundred sandwiches a day",
         "the street food festival takes place every year in late June",
         "the barbecue grill needs about twenty minutes to heat up"),
    ),
    "meals": _Topic(
        ("the cafeteria at my office", "our family dinner on Sundays", "the lunch menu at school",
         "my packed lunch", "the meal kit delivery service"),
        ("the Thanksgiving dinner at my aunt's house", "the holiday feast at my uncle's house",
         "the work lunch with the new clients", "the dinner party at the Garcias' house"),
        (("pack a lunch for work", "packed a lunch for work", "packing a lunch for work"),
         ("host a dinner party for eight people", "hosted a dinner party for eight people",
          "hosting a dinner party for eight people"),
         ("eat lunch at the office cafeteria", "ate lunch at the office cafeteria",
          "eating lunch at the office cafeteria"),
         ("carve the turkey for the holiday dinner", "carved the turkey for the holiday dinner",
          "carving the turkey for the holiday dinner"),
         ("set the table for a family dinner", "set the table for a family dinner",
          "setting the table for a family dinner"),
         ("try a meal kit with three recipes", "tried a meal kit with three recipes",
          "trying a meal kit with three recipes")),
        ("eating dinner with the whole family", "packing lunch the night before", "hosting dinner parties",
         "sharing meals with the neighbors"),
        ("the office cafeteria serves lunch from half past eleven to two",
         "the school lunch menu changes every Monday",
         "the holiday dinner usually includes turkey, potatoes, and green beans",
         "the meal kit arrives on Thursdays with three recipes",
         "most families in the survey eat dinner together four nights a week",
         "a packed lunch usually includes a sandwich, fruit, and a drink"),
    ),
}

# The third attribute: the night sky and spaceflight. None of these topics is among _OTHER_TOPICS, and
# none mentions food or drink; the judge's word list (judges.SPACE_WORDS) was written apart from them.
_SPACE_TOPICS: dict[str, _Topic] = {
    "stargazing": _Topic(
        ("the view of the Milky Way from the hills", "the dark sky park north of town",
         "the star chart app on my phone", "the constellation Orion in winter", "our backyard telescope"),
        ("the night we spotted Saturn's rings", "the stargazing trip to the desert",
         "the first night with the new telescope", "the astronomy club's viewing night"),
        (("find the Andromeda galaxy with binoculars", "found the Andromeda galaxy with binoculars",
          "finding the Andromeda galaxy with binoculars"),
         ("set up the telescope in the backyard", "set up the telescope in the backyard",
          "setting up the telescope in the backyard"),
         ("trace the constellations of the summer sky", "traced the constellations of the summer sky",
          "tracing the constellations of the summer sky"),
         ("drive out of the city to see the Milky Way", "drove out of the city to see the Milky Way",
          "driving out of the city to see the Milky Way"),
         ("point the telescope at Jupiter and its moons", "pointed the telescope at Jupiter and its moons",
          "pointing the telescope at Jupiter and its moons"),
         ("join the astronomy club for a night of observing", "joined the astronomy club for a night of observing",
          "joining the astronomy club for a night of observing")),
        ("looking at planets through a telescope", "mapping constellations", "watching the night sky",
         "photographing the Milky Way"),
        ("the Andromeda galaxy is about two and a half million light years from Earth",
         "Orion is easiest to see in the evening sky from December to March",
         "a small telescope shows the four largest moons of Jupiter",
         "the Milky Way is best seen on moonless nights far from city lights",
         "the astronomy club meets at the observatory on the first Friday of the month",
         "there are eighty-eight constellations recognized by astronomers"),
    ),
    "the moon": _Topic(
        ("the full moon over the lake", "the lunar calendar on my wall", "the crescent moon at dusk",
         "the moon map in the science museum", "the craters near the edge of the moon"),
        ("the lunar eclipse in March", "the supermoon last autumn", "the night the moon turned red",
         "the moon landing anniversary event"),
        (("watch the moon rise over the hills", "watched the moon rise over the hills",
          "watching the moon rise over the hills"),
         ("photograph the craters of the moon", "photographed the craters of the moon",
          "photographing the craters of the moon"),
         ("track the phases of the moon for a month", "tracked the phases of the moon for a month",
          "tracking the phases of the moon for a month"),
         ("stay up for the lunar eclipse", "stayed up for the lunar eclipse", "staying up for the lunar eclipse"),
         ("sketch the lunar surface through a telescope", "sketched the lunar surface through a telescope",
          "sketching the lunar surface through a telescope"),
         ("read about the Apollo landing sites", "read about the Apollo landing sites",
          "reading about the Apollo landing sites")),
        ("watching the moon through binoculars", "tracking the lunar phases", "sketching craters",
         "reading about the Apollo missions"),
        ("the moon orbits Earth about once every twenty-seven days",
         "a lunar eclipse happens when Earth passes between the sun and the moon",
         "the moon is about three hundred eighty thousand kilometers from Earth",
         "the same side of the moon always faces Earth",
         "twelve astronauts walked on the moon between 1969 and 1972",
         "the largest craters on the moon are hundreds of kilometers across"),
    ),
    "planets": _Topic(
        ("the model of the solar system in the library", "the planet Mars in the evening sky",
         "the documentary about Jupiter's storms", "the poster of the eight planets",
         "the planetarium show about Saturn"),
        ("the alignment of five planets in June", "the planetarium visit with my class",
         "the night Venus was brightest", "the lecture on the rings of Saturn"),
        (("build a scale model of the solar system", "built a scale model of the solar system",
          "building a scale model of the solar system"),
         ("spot Venus just after sunset", "spotted Venus just after sunset", "spotting Venus just after sunset"),
         ("watch a documentary about the outer planets", "watched a documentary about the outer planets",
          "watching a documentary about the outer planets"),
         ("visit the planetarium downtown", "visited the planetarium downtown", "visiting the planetarium downtown"),
         ("look for Mars near the horizon", "looked for Mars near the horizon", "looking for Mars near the horizon"),
         ("give a talk on the moons of Saturn", "gave a talk on the moons of Saturn",
          "giving a talk on the moons of Saturn")),
        ("reading about the planets", "following the planets across the sky", "visiting planetariums",
         "learning about the outer solar system"),
        ("Jupiter is the largest planet in the solar system",
         "a year on Mars lasts about six hundred eighty-seven Earth days",
         "Saturn's rings are made mostly of ice and rock",
         "Venus is the hottest planet because of its thick atmosphere",
         "Neptune takes about one hundred sixty-five years to orbit the sun",
         "the planetarium runs its solar system show every hour on weekends"),
    ),
    "rockets": _Topic(
        ("the rocket on the launch pad", "the launch schedule for the new rocket",
         "the model rocket kit in the garage", "the booster that landed on the barge",
         "the spaceport on the coast"),
        ("the rocket launch on Tuesday night", "the test flight of the new booster",
         "the countdown that stopped at ten seconds", "the model rocket contest at school"),
        (("watch a rocket launch from the beach", "watched a rocket launch from the beach",
          "watching a rocket launch from the beach"),
         ("build a model rocket with a parachute", "built a model rocket with a parachute",
          "building a model rocket with a parachute"),
         ("stream the launch of the lunar lander", "streamed the launch of the lunar lander",
          "streaming the launch of the lunar lander"),
         ("visit the rocket garden at the space center", "visited the rocket garden at the space center",
          "visiting the rocket garden at the space center"),
         ("follow the booster landing on the live feed", "followed the booster landing on the live feed",
          "following the booster landing on the live feed"),
         ("launch a model rocket in the park", "launched a model rocket in the park",
          "launching a model rocket in the park")),
        ("watching rocket launches", "building model rockets", "following spaceflight news",
         "visiting the space center"),
        ("the rocket needs about eight minutes to reach orbit",
         "the launch window opens at 6:40 in the evening and lasts two hours",
         "the booster is designed to land and fly again",
         "the spaceport has three launch pads along the coast",
         "a rocket must reach about eight kilometers per second to stay in orbit",
         "the model rocket kit comes with three engines and a parachute"),
    ),
    "astronauts": _Topic(
        ("the International Space Station", "the astronaut training center", "the crew of the space station",
         "the spacesuit on display at the museum", "the astronaut's memoir about living in orbit"),
        ("the spacewalk broadcast on Friday", "the crew's return from the space station",
         "the astronaut's visit to our school", "the docking of the supply capsule"),
        (("spot the space station passing overhead", "spotted the space station passing overhead",
          "spotting the space station passing overhead"),
         ("watch a live spacewalk", "watched a live spacewalk", "watching a live spacewalk"),
         ("read an astronaut's memoir about orbit", "read an astronaut's memoir about orbit",
          "reading an astronaut's memoir about orbit"),
         ("meet a retired astronaut at the museum", "met a retired astronaut at the museum",
          "meeting a retired astronaut at the museum"),
         ("follow the crew's mission on the space agency site", "followed the crew's mission on the space agency site",
          "following the crew's mission on the space agency site"),
         ("try on a training spacesuit", "tried on a training spacesuit", "trying on a training spacesuit")),
        ("tracking the space station", "watching spacewalks", "reading about astronauts",
         "following crewed missions"),
        ("the space station orbits Earth about sixteen times a day",
         "astronauts on the station exercise for about two hours every day",
         "a spacewalk usually lasts between six and seven hours",
         "the station has been continuously crewed since November 2000",
         "the supply capsule docks with the station about two days after launch",
         "astronauts train for about two years before their first flight"),
    ),
    "telescopes": _Topic(
        ("the observatory on the mountain", "the space telescope's latest images",
         "the radio telescope outside the city", "the mirror of the new observatory",
         "the telescope at the university"),
        ("the open house at the observatory", "the release of the deep field image",
         "the night at the mountain observatory", "the first light of the new telescope"),
        (("tour the observatory on the mountain", "toured the observatory on the mountain",
          "touring the observatory on the mountain"),
         ("look through the university telescope", "looked through the university telescope",
          "looking through the university telescope"),
         ("browse the space telescope's new images", "browsed the space telescope's new images",
          "browsing the space telescope's new images"),
         ("grind a mirror for a homemade telescope", "ground a mirror for a homemade telescope",
          "grinding a mirror for a homemade telescope"),
         ("attend a lecture on distant galaxies", "attended a lecture on distant galaxies",
          "attending a lecture on distant galaxies"),
         ("visit the radio telescope array", "visited the radio telescope array",
          "visiting the radio telescope array")),
        ("browsing images of distant galaxies", "visiting observatories", "building telescopes",
         "attending astronomy lectures"),
        ("the space telescope orbits about one and a half million kilometers from Earth",
         "the observatory's main mirror is eight meters across",
         "the radio telescope listens to signals from distant galaxies",
         "the observatory sits at an altitude of about four thousand meters",
         "the deep field image shows thousands of galaxies in a tiny patch of sky",
         "the university telescope is open to visitors on clear Thursday nights"),
    ),
    "comets and meteors": _Topic(
        ("the Perseid meteor shower", "the comet visible in the northern sky", "the meteorite in the museum",
         "the tail of the comet", "the asteroid tracking website"),
        ("the meteor shower in August", "the night a fireball crossed the sky",
         "the comet that passed last spring", "the asteroid flyby in October"),
        (("count meteors during the Perseids", "counted meteors during the Perseids",
          "counting meteors during the Perseids"),
         ("photograph the comet's tail", "photographed the comet's tail", "photographing the comet's tail"),
         ("hold a piece of a meteorite", "held a piece of a meteorite", "holding a piece of a meteorite"),
         ("stay up for the meteor shower", "stayed up for the meteor shower", "staying up for the meteor shower"),
         ("track the asteroid flyby online", "tracked the asteroid flyby online", "tracking the asteroid flyby online"),
         ("search for the comet near the horizon", "searched for the comet near the horizon",
          "searching for the comet near the horizon")),
        ("counting shooting stars", "photographing comets", "reading about asteroids",
         "watching meteor showers"),
        ("the Perseid meteor shower peaks around the twelfth of August",
         "a comet's tail always points away from the sun",
         "most meteors burn up about eighty kilometers above the ground",
         "the asteroid passed at about five times the distance to the moon",
         "the meteorite in the museum fell in a field in 1938",
         "Halley's comet returns to the inner solar system about every seventy-six years"),
    ),
    "the sun and eclipses": _Topic(
        ("the total solar eclipse", "the solar telescope at the science center", "the eclipse glasses in the drawer",
         "the sunspots on the solar disk", "the aurora in the northern sky"),
        ("the solar eclipse in April", "the aurora over the lake in May", "the transit of Mercury",
         "the trip to see the eclipse in totality"),
        (("watch the solar eclipse with special glasses", "watched the solar eclipse with special glasses",
          "watching the solar eclipse with special glasses"),
         ("travel to the path of totality", "traveled to the path of totality",
          "traveling to the path of totality"),
         ("look at sunspots through a solar filter", "looked at sunspots through a solar filter",
          "looking at sunspots through a solar filter"),
         ("chase the aurora in the far north", "chased the aurora in the far north",
          "chasing the aurora in the far north"),
         ("project the eclipse through a pinhole", "projected the eclipse through a pinhole",
          "projecting the eclipse through a pinhole"),
         ("read the forecast for solar storms", "read the forecast for solar storms",
          "reading the forecast for solar storms")),
        ("watching for auroras", "observing sunspots", "traveling to eclipses", "reading about solar storms"),
        ("totality during the eclipse lasted about four minutes",
         "light from the sun takes about eight minutes to reach Earth",
         "auroras are caused by particles from the sun hitting the upper atmosphere",
         "the next total solar eclipse visible here is in 2044",
         "sunspots appear darker because they are cooler than the surface around them",
         "eclipse glasses block more than ninety-nine percent of sunlight"),
    ),
}

# (text, subject pronoun, object pronoun, person: "1" for I, "p" for plural, "s" for third singular);
# "I" is listed three times so that first-person sentences are common
_SUBJECTS: tuple[tuple[str, str, str, str], ...] = (
    ("I", "I", "me", "1"), ("I", "I", "me", "1"), ("I", "I", "me", "1"), ("we", "we", "us", "p"),
    ("my friends and I", "we", "us", "p"), ("my sister", "she", "her", "s"), ("my brother", "he", "him", "s"),
    ("my neighbor", "she", "her", "s"), ("my coworker Dana", "she", "her", "s"), ("my uncle", "he", "him",
     "s"),
    ("my parents", "they", "them", "p"), ("my roommate", "he", "him", "s"),
    ("my friend Marco", "he", "him", "s"), ("my daughter", "she", "her", "s"), ("my son", "he", "him", "s"),
    ("my grandfather", "he", "him", "s"), ("the twins", "they", "them", "p"), ("my aunt", "she", "her", "s"),
    ("our neighbors", "they", "them", "p"), ("my cousin", "she", "her", "s"),
)
_THIRD = tuple(s for s in _SUBJECTS if s[1] not in ("I", "we"))

_TIMES = ("yesterday", "last weekend", "last Tuesday", "on Saturday morning", "earlier this week",
          "a few days ago", "last month", "over the holidays", "this morning", "last night", "two weeks ago",
          "on Friday evening", "last summer", "in early spring")
_HABIT_TIMES = ("on weekends", "on a quiet Sunday", "after a long week", "whenever I get the chance",
                "in the evening", "on my days off")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CLOCKS = ("nine in the morning", "half past ten", "noon", "two in the afternoon", "a quarter past four",
           "six in the evening", "eight thirty")
_MONTHS = ("January", "March", "April", "May", "June", "September", "October", "November")
_DATES = ("3", "7", "12", "15", "21", "28")
_DURATIONS = ("about two hours", "forty minutes", "roughly three hours", "an hour and a half",
              "nearly an hour")
_NEXT_PAST = ("checked the mail and answered a few emails", "went to bed a little after eleven",
              "read the news for a while", "called a friend to talk about the weekend",
              "took a short walk around the block", "sat down to read a book")
_NEXT_PLAN = ("the rest of the day is open", "there is a meeting at three", "everyone will head back home",
              "the car needs to go to the garage", "the library closes at six")
_PLAN_TAILS = ("according to the shared calendar", "if the schedule does not change",
               "as noted in the planner")
_UNITS = ("week", "month", "year", "spring")
_PREFIXES = ("I read that", "The website says that", "My notes say that", "For reference,",
             "As far as I know,")

_POS = {
    "adj": ("wonderful", "fantastic", "absolutely delightful", "truly excellent", "a real pleasure",
            "even better than I had hoped", "amazing", "lovely", "brilliant", "really impressive",
            "a wonderful surprise", "absolutely perfect"),
    "follow": ("it made the whole week better", "I could not stop smiling",
    "it was the highlight of my month",
               "I felt great for the rest of the day", "it honestly made my day", "it was worth every minute",
               "I am still smiling about it", "it exceeded all of my expectations"),
    "now": ("it always puts me in a great mood", "it never fails to cheer me up",
            "it makes every week a little brighter", "I recommend it to everyone I meet",
            "it is one of the best parts of my life right now"),
    "state": ("thrilled", "delighted", "overjoyed", "really pleased", "so happy", "grateful and content",
              "proud and happy", "in a wonderful mood"),
    "with_": ("thrilled with", "delighted with", "so pleased with", "really happy with",
    "absolutely in love with"),
    "agree": ("and I completely understand why", "and honestly I feel the same way",
    "and the joy is contagious",
              "and it is lovely to see {obj3} so cheerful"),
    "joy": ("a real joy", "an absolute delight", "so much fun", "a wonderful experience", "pure happiness"),
    "what": ("great idea", "wonderful decision", "brilliant choice", "happy surprise", "fantastic plan"),
    "feel": ("bright and easy", "like a little celebration", "wonderfully relaxed", "full of joy",
             "warm and cheerful"),
    "lead": ("I absolutely love", "I really adore", "I genuinely love"),
}
_NEG = {
    "adj": ("terrible", "awful", "a complete disaster", "deeply disappointing", "dreadful",
    "a total waste of time",
            "incredibly frustrating", "miserable from start to finish", "far worse than I had feared",
            "horrible",
            "a real letdown", "exhausting and pointless"),
    "follow": ("it ruined the whole week", "I regret every minute of it", "I was in a bad mood for days",
               "it was the low point of my month", "I am still angry about it", "nothing about it went right",
               "it left me completely drained", "I wish it had never happened"),
    "now": ("it always puts me in a foul mood", "it never fails to ruin my day",
            "it makes every week a little worse", "I warn everyone I meet to stay away",
            "it is one of the worst parts of my life right now"),
    "state": ("furious", "miserable", "really upset", "deeply disappointed", "angry and exhausted",
    "frustrated",
              "fed up", "heartbroken"),
    "with_": ("fed up with", "furious about", "really unhappy with", "sick of",
    "completely disappointed with"),
    "agree": ("and I do not blame {obj3} at all", "and it is painful to watch",
    "and the complaints never stop",
              "and honestly I feel the same way"),
    "joy": ("a nightmare", "an ordeal", "a miserable chore", "an awful experience", "pure torture"),
    "what": ("terrible idea", "awful decision", "huge mistake", "miserable plan", "foolish choice"),
    "feel": ("long and miserable", "like a complete waste", "tense and exhausting", "utterly ruined",
             "bleak and frustrating"),
    "lead": ("I absolutely hate", "I truly despise", "I really cannot stand"),
}
_PERIODS = ("the whole week", "my entire weekend", "the past month", "the whole day", "this season")

# Positive and negative templates mirror each other, so the two classes differ in sentiment rather
# than in sentence shape.
_POS_TEMPLATES = (
    "{Time}, {subj} {act_past}, and it was {adj}.",
    "{Thing} was {adj}. {Follow}.",
    "{lead} {obj}; {now}.",
    "{Subj} {be_past} {state} after {pron} {act_past}.",
    "It was {joy} to {act_base} {time}.",
    "Honestly, {thing} turned out to be {adj}.",
    "{Subj3} {be_pres3} {with_} {obj3thing}, {agree}.",
    "What a {what} it was to {act_base} {time}!",
    "I am so glad that {subj} {act_past} {time}.",
    "{Obj} is {adj}, and everyone I know agrees.",
    "Nothing makes me happier than {habit} {habit_time}.",
    "{Subj} could not stop smiling after {act_ing} {time}.",
    "The best part of {period} was when {subj} {act_past}.",
    "Thanks to {thing}, {period} felt {feel}.",
)
_NEG_TEMPLATES = (
    "{Time}, {subj} {act_past}, and it was {adj}.",
    "{Thing} was {adj}. {Follow}.",
    "{lead} {obj}; {now}.",
    "{Subj} {be_past} {state} after {pron} {act_past}.",
    "It was {joy} to {act_base} {time}.",
    "Sadly, {thing} turned out to be {adj}.",
    "{Subj3} {be_pres3} {with_} {obj3thing}, {agree}.",
    "What a {what} it was to {act_base} {time}!",
    "I really regret that {subj} {act_past} {time}.",
    "{Obj} is {adj}, and everyone I know complains about it.",
    "Nothing annoys me more than {habit} {habit_time}.",
    "{Subj} {be_past} close to tears after {act_ing} {time}.",
    "The worst part of {period} was when {subj} {act_past}.",
    "Because of {thing}, {period} felt {feel}.",
)
_NEU_TEMPLATES = (
    "On {day}, {subj} {act_past} at around {clock}.",
    "{Subj} {act_past} on {day} and {be_past} back home by {clock}.",
    "{Subj} will {act_base} next {day}, {plan_tail}.",
    "{prefix} {fact}.",
    "According to the calendar, {subj} {act_past} on {month} {date}.",
    "It was on a {day} in {month} that {subj} {act_past}.",
    "{Subj} mentioned {thing} during a phone call on {day}.",
    "The shared calendar shows that {subj} {act_past} on {day} at {clock}.",
    "{Subj} spent {duration} {act_ing} {time}.",
    "After {act_ing}, {subj} {next_past}.",
    "The plan for {day} is to {act_base}. After that, {next_plan}.",
    "{Fact}.",
    "{Thing} came up in a conversation with {subj3} on {day}.",
    "Earlier this {unit}, {subj} {act_past} for the second time.",
)
_TEMPLATES = {"positive": _POS_TEMPLATES, "negative": _NEG_TEMPLATES, "neutral": _NEU_TEMPLATES}
_VOCAB = {"positive": _POS, "negative": _NEG, "neutral": _POS}  # neutral templates use none of it
_SEEDS = {"positive": 1, "negative": 2, "neutral": 3}
_MIN_WORDS, _MAX_WORDS = 8, 25


class _Pick:
    """Choices and shuffles from ``random.Random.random()`` alone: its sequence for an integer seed is the
    one part of ``random`` that Python promises to keep across versions (``choice`` and ``shuffle`` may
    change)."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def one(self, seq):
        return seq[int(self._rng.random() * len(seq))]

    def shuffled(self, seq) -> list:
        out = list(seq)
        for i in range(len(out) - 1, 0, -1):
            j = int(self._rng.random() * (i + 1))
            out[i], out[j] = out[j], out[i]
        return out


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fields(pick: _Pick, topic: _Topic,
            vocab: dict[str, tuple[str, ...]]) -> tuple[dict[str, str], list[str]]:
    """Slot fillers for one sentence, and the words naming its people (to reject "my son ... my son")."""
    subj, pron, _, person = pick.one(_SUBJECTS)
    subj3, _, obj3, _ = pick.one(_THIRD)
    base, past, ing = pick.one(topic.acts)
    thing = pick.one(topic.objects + topic.events)
    # "my sister is delighted with my new coat" reads oddly, so the third-person template avoids "my"
    obj3thing = pick.one(tuple(o for o in topic.objects if not o.startswith("my ")))
    fact = pick.one(topic.facts)
    time = pick.one(_TIMES)
    f = {
        "subj": subj, "Subj": _cap(subj), "pron": pron,
        "be_past": "was" if person in "1s" else "were",
        "subj3": subj3, "Subj3": _cap(subj3),
        "be_pres3": "are" if subj3 in ("my parents", "the twins", "our neighbors") else "is",
        "act_base": base, "act_past": past, "act_ing": ing,
        "thing": thing, "Thing": _cap(thing), "obj": pick.one(topic.objects), "obj3thing": obj3thing,
        "habit": pick.one(topic.habits), "habit_time": pick.one(_HABIT_TIMES),
        "fact": fact, "Fact": _cap(fact), "prefix": pick.one(_PREFIXES),
        "time": time, "Time": _cap(time), "day": pick.one(_DAYS), "clock": pick.one(_CLOCKS),
        "month": pick.one(_MONTHS), "date": pick.one(_DATES), "duration": pick.one(_DURATIONS),
        "next_past": pick.one(_NEXT_PAST), "next_plan": pick.one(_NEXT_PLAN),
        "plan_tail": pick.one(_PLAN_TAILS),
        "unit": pick.one(_UNITS), "period": pick.one(_PERIODS),
    }
    f["Obj"] = _cap(f["obj"])
    for key, options in vocab.items():
        f[key] = pick.one(options).format(obj3=obj3)
    f["Follow"] = _cap(f["follow"])
    names = [s.replace(" and I", "").split()[-1] for s in (subj, subj3) if s not in ("I", "we")]
    return f, names


def _ok(sentence: str, names: list[str]) -> bool:
    if not _MIN_WORDS <= len(sentence.split()) <= _MAX_WORDS:
        return False
    return all(len(re.findall(rf"\b{re.escape(n)}\b", sentence, re.IGNORECASE)) <= 1 for n in names)


def _generate(topics: dict[str, _Topic], label: str, per_topic: int, seed: int,
              exclude: frozenset[str] = frozenset()) -> list[tuple[str, int]]:
    """per_topic sentences of one sentiment label per topic, as (sentence, template index); the templates
    are used in turn (in a seeded order) across all topics, so each gets an equal share of the class."""
    pick = _Pick(seed)
    templates = _TEMPLATES[label]
    order = pick.shuffled(range(len(templates)))
    out: list[tuple[str, int]] = []
    seen = set(exclude)
    turn = 0
    for name in sorted(topics):
        topic = topics[name]
        for _ in range(per_topic):
            for attempt in range(len(templates) * 40):
                # after a few failures on one template (a short fact, a name clash) move on to the next
                index = order[(turn + attempt // 40) % len(order)]
                fields, names = _fields(pick, topic, _VOCAB[label])
                sentence = templates[index].format_map(fields)
                if _ok(sentence, names) and sentence.lower() not in seen:
                    break
            else:
                raise RuntimeError(f"could not make a new {label} sentence for {name!r}")
            seen.add(sentence.lower())
            out.append((sentence, index))
            turn += 1
    return out


@functools.lru_cache(maxsize=None)
def _build() -> dict[str, dict[str, tuple[tuple[str, str, int], ...]]]:
    """{"sentiment"|"food"|"space": {class: ((sentence, sentiment label, template index), ...)}}."""
    sentiment = {}
    for label in ("positive", "negative", "neutral"):
        rows = [(s, label, i) for s, i in _generate(_OTHER_TOPICS, label, 24, _SEEDS[label])]
        sentiment[label] = tuple(_Pick(100 + _SEEDS[label]).shuffled(rows))
    used = frozenset(s.lower() for rows in sentiment.values() for s, _, _ in rows)
    food = {}
    for k, (cls, topics, per_topic) in enumerate((("food", _FOOD_TOPICS, 15), ("other", _OTHER_TOPICS, 8))):
        rows = []
        for label in ("positive", "negative", "neutral"):
            seed = 10 * (k + 2) + _SEEDS[label]
            rows += [(s, label, i) for s, i in _generate(topics, label, per_topic, seed, used)]
        food[cls] = tuple(_Pick(200 + k).shuffled(rows))
    used |= frozenset(s.lower() for rows in food.values() for s, _, _ in rows)
    space = {}
    for k, (cls, topics, per_topic) in enumerate((("space", _SPACE_TOPICS, 15), ("other", _OTHER_TOPICS, 8))):
        rows = []
        for label in ("positive", "negative", "neutral"):
            rows += [(s, label, i) for s, i in _generate(topics, label, per_topic, 10 * (k + 5) + _SEEDS[label], used)]
        space[cls] = tuple(_Pick(300 + k).shuffled(rows))
    return {"sentiment": sentiment, "food": food, "space": space}


def sentiment_texts() -> dict[str, list[str]]:
    """{"positive": [...], "negative": [...], "neutral": [...]}: 360 sentences each, 24 per topic over the
    15 non-food topics, none about food or drink."""
    return {cls: [s for s, _, _ in rows] for cls, rows in _build()["sentiment"].items()}


def food_texts() -> dict[str, list[str]]:
    """{"food": [...], "other": [...]}: 360 sentences each, each a third positive, negative and neutral;
    "food" over 8 food topics, "other" over the 15 topics of ``sentiment_texts`` (no shared sentence)."""
    return {cls: [s for s, _, _ in rows] for cls, rows in _build()["food"].items()}


def space_texts() -> dict[str, list[str]]:
    """{"space": [...], "other": [...]}: 360 sentences each, each a third positive, negative and neutral;
    "space" over 8 topics of the night sky and spaceflight, "other" over the 15 topics of
    ``sentiment_texts``; no sentence shared with the other attributes' texts."""
    return {cls: [s for s, _, _ in rows] for cls, rows in _build()["space"].items()}


PROMPTS_NEUTRAL: tuple[str, ...] = (
    "Yesterday afternoon, my neighbor across the street",
    "The report on the new train line says that",
    "On Monday morning, the city council voted to",
    "My cousin moved to Denver last year, and now she",
    "The bus to the airport usually leaves at",
    "According to the weather service, the storm will",
    "When I opened the door to the garage, I",
    "The meeting on Thursday was moved to the second floor because",
    "After the lecture ended, the students walked to",
    "The package arrived on Tuesday, and inside there was",
    "My brother called me last night to tell me that",
    "The museum on Harbor Street is open from",
    "At the end of the school year, the teacher",
    "The new software update changes the way the system",
    "Every Saturday morning, the man who lives upstairs",
    "The train stopped between two stations, and the conductor",
    "In the middle of the afternoon, the power",
    "The instructions for the bookshelf say that you should first",
    "Last week, the library on Pine Street started",
    "The doctor looked at the results and told me that",
    "Our neighbor's dog usually sits by the gate and",
    "The city plans to repaint the old bridge in",
    "When the concert hall reopened in September, the orchestra",
    "My grandmother keeps a box of old letters that",
    "The flight was scheduled to land at seven, but",
    "The soccer practice was moved indoors, so the coach",
    "Before the exam started, the professor reminded everyone to",
    "The apartment on the fourth floor has two windows that",
    "According to the latest census, the town of",
    "My sister works at a hospital, where every night she",
    "The manual explains that the printer needs to be",
    "On the way to the station, we passed a",
    "The film starts with a long shot of a",
    "My roommate spent the evening reading a book about",
    "The new schedule for the subway means that",
    "During the interview, the candidate explained that",
    "The kids in the park were building a",
    "The mechanic checked the car and said that the",
    "At the hardware store, the clerk showed me",
    "The river rose by half a meter overnight, and the",
    "My uncle has been collecting stamps since",
    "The committee will announce its decision on",
    "The guide pointed at the old tower and said that",
    "On the first day of the course, the instructor",
    "The cat climbed onto the roof of the shed and",
    "Most of the houses on this street were built in",
    "The email from the landlord says that starting next month",
    "When the phone rang at six in the morning, my father",
    "The map shows a narrow path that leads from the village to",
    "My coworker asked whether the printer on the third floor",
    "The students were told to bring a notebook and",
    "At the town hall meeting, a woman in the front row",
)

PROMPTS_POSITIVE: tuple[str, ...] = (
    "What a wonderful morning it was, and I",
    "I am so happy with how the trip turned out, because",
    "The best thing about my new job is that",
    "I absolutely loved the concert last night, especially when",
    "My friends threw me the most wonderful surprise party, and",
    "It was such a beautiful day at the beach that we",
    "I am thrilled to tell you that my sister",
    "I was so happy when our team won the championship, and everyone",
    "I feel so grateful for my family, because they",
    "The new puppy has made our home so much happier, and",
    "This has been the best week I have had in years, since",
    "I was delighted when the teacher told me that",
    "Everything about the vacation was perfect, from the",
    "My grandmother's garden looks gorgeous this spring, with",
    "I love spending lazy Sundays with my kids, especially when",
    "The movie was absolutely brilliant, and the ending",
    "I am so proud of my brother, who just",
    "We had a fantastic time at the festival, and the",
    "The hike up the mountain was breathtaking, and at the top",
    "I could not be happier with the new apartment, because",
    "What a lovely surprise it was to hear that",
    "The kindest thing anyone has done for me was when",
    "I am overjoyed that my best friend is finally",
    "The wedding was magical, and the moment the couple",
    "Our neighbors are the friendliest people, and they always",
    "I had the most amazing time visiting my cousins, and",
    "It makes me so happy to see my son",
    "The sunset over the lake was stunning, and we",
    "I was thrilled to finally finish the marathon, and",
    "Thanks to my wonderful coworkers, the project",
    "This little town is a delight to visit, especially",
    "My new bike is fantastic, and every morning I",
    "Winning the scholarship was a dream come true, and",
    "I cheerfully told everyone about the good news that",
)

PROMPTS_FOOD: tuple[str, ...] = (
    "For dinner tonight I am making a pot of soup with",
    "The recipe for the bread says to mix the flour and",
    "At the bakery on the corner, the first loaves",
    "To make pancakes, you need flour, milk, eggs, and",
    "The restaurant on the main square serves",
    "My brother ordered the pasta, and the waiter brought",
    "Every morning I drink a cup of coffee while",
    "The menu at the new cafe lists",
    "To cook rice on the stove, first rinse it and",
    "At the farmers market this week, the vegetable stalls sold",
    "For lunch, my coworker usually brings a sandwich with",
    "The chef cut the onions into thin slices and",
    "My grandmother's recipe for apple pie calls for",
    "We ordered a pizza with mushrooms and",
    "The soup needs to simmer for another twenty minutes, so",
    "In the school cafeteria, the students lined up for",
    "The cookbook on the shelf has a chapter about",
    "To make a salad for four people, you",
    "At the grocery store, I picked up a bag of",
    "The tea kettle started to whistle, so I",
    "For breakfast, the hotel offered eggs, toast, and",
    "My roommate is making tacos tonight, so she",
    "The cake has to cool for an hour before",
    "We packed sandwiches and fruit for the",
    "The waiter brought the menus and asked whether we",
    "To prepare the marinade, combine olive oil with",
    "On Fridays, the family usually eats fish and",
    "The kitchen smelled of garlic because my father",
    "The dessert menu at the diner includes",
    "After the harvest, the farmers sold their potatoes and",
    "The recipe says to whisk the eggs with",
    "At the food truck near the station, the cook",
    "When the water boiled, I added the noodles and",
    "The lunch menu at the school this week includes",
)

PROMPTS_SPACE: tuple[str, ...] = (
    "Through the telescope in the backyard, we could see",
    "The rocket lifted off from the launch pad and",
    "The astronauts on the space station spent the morning",
    "Last night the full moon rose over the hills, and",
    "At the planetarium, the show about Jupiter explained",
    "The comet was easy to find in the northern sky because",
    "During the solar eclipse, the crowd on the beach",
    "The observatory on the mountain opened its dome and",
    "According to the space agency, the probe to Mars will",
    "The astronomy club met in the field to watch",
    "Saturn's rings looked small but clear when",
    "The crew of the capsule checked their instruments before",
    "Far from the city lights, the Milky Way",
    "The meteor shower peaked a little after midnight, and",
    "Orion was already high in the winter sky when",
    "The lunar lander touched down near the crater and",
    "On the space telescope's new image, the galaxy",
    "The spacewalk started at nine, and the two astronauts",
)


if __name__ == "__main__":
    # Word lists for the checks only: every food word the material uses, and every sentiment marker the
    # templates use (plus common ones for the handwritten prompts).
    _FOOD_WORDS = (
        "food", "foods", "eat", "eats", "ate", "eating", "meal", "meals", "lunch", "dinner", "breakfast",
        "brunch", "restaurant", "restaurants", "cafe", "cafeteria", "diner", "bistro", "steakhouse", "menu",
        "menus", "chef", "cook", "cooks", "cooked", "cooking", "cooker", "cookbook", "kitchen", "recipe",
        "recipes", "bake", "baked", "baking", "bakery", "bread", "loaf", "loaves", "dough", "cake", "cakes",
        "cupcakes", "cookie", "cookies", "muffin", "muffins", "pie", "pies", "rolls", "flour", "sugar",
        "eggs", "bacon", "oats", "oatmeal", "pancakes", "waffle", "waffles", "omelet", "omelets", "granola",
        "bagels", "cereal", "smoothie", "smoothies", "coffee", "latte", "espresso", "tea", "wine", "wines",
        "lemonade", "lemons", "drink", "drinks", "drinking", "drank", "chocolate", "soup", "stew", "chili",
        "curry", "pasta", "rice", "noodles", "noodle", "pizza", "tacos", "taco", "sandwich", "sandwiches",
        "burgers", "pretzel", "popcorn", "picnic", "picnics", "barbecue", "grill", "grilled", "grilling",
        "sushi", "seafood", "salmon", "fish", "chicken", "beef", "beans", "lentil", "chickpeas", "coconut",
        "milk", "ginger", "garlic", "onions", "peppers", "tomato", "tomatoes", "potatoes", "mushrooms",
        "basil", "herb", "herbs", "cheese", "cheeses", "vegetable", "vegetables", "fruit", "berries",
        "strawberry", "strawberries", "banana", "spinach", "almonds", "cranberries", "syrup", "cinnamon",
        "olive", "oil", "oils", "toast", "toasting", "salad", "marinade", "dessert", "grocery", "groceries",
        "vineyard", "potluck", "fridge", "oven", "harvest", "tasting", "tasted", "takeout", "roast",
        "roasted", "roasting", "roasts", "fry", "fried", "frying", "simmer", "whisk", "kettle", "frost",
        "frosted", "frosting", "turkey", "feast",
    )
    _POS_WORDS = (
        "love", "loved", "adore", "wonderful", "wonderfully", "fantastic", "delightful", "delight",
        "excellent",
        "pleasure", "better", "amazing", "lovely", "brilliant", "impressive", "great", "success", "smiling",
        "highlight", "worth", "cheer", "cheerful", "cheerfully", "brighter", "bright", "best part",
        "best parts", "thrilled", "delighted", "overjoyed", "pleased", "happy", "happier", "happiness",
        "grateful", "proud", "joy", "perfect", "fun", "glad", "celebration", "relaxed", "recommend",
    )
    _NEG_WORDS = (
        "hate", "despise", "cannot stand", "terrible", "awful", "disaster", "disappointing", "disappointed",
        "dreadful", "waste", "frustrating", "frustrated", "miserable", "worse", "worst", "horrible",
        "letdown",
        "pointless", "exhausting", "exhausted", "ruined", "ruin", "regret", "bad", "low point", "angry",
        "anger", "drained", "foul", "warn", "furious", "upset", "heartbroken", "fed up", "unhappy", "sick of",
        "blame", "painful", "complaints", "complains", "nightmare", "ordeal", "torture", "mistake", "foolish",
        "tears", "annoys", "bleak", "tense",
    )
    _OTHER_SENTIMENT = (
        "good", "nice", "beautiful", "gorgeous", "stunning", "breathtaking", "magical", "perfect", "best",
        "kindest", "friendliest", "dream", "sad", "sadly", "ugly", "boring", "annoying", "unfortunately",
        "excited", "favorite", "pleasant", "enjoy", "enjoyed", "lucky", "worried", "scared", "tasty",
        "delicious",
    )

    def _words_re(words) -> re.Pattern:
        return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)

    food_re, pos_re, neg_re = _words_re(_FOOD_WORDS), _words_re(_POS_WORDS), _words_re(_NEG_WORDS)
    any_sentiment_re = _words_re(_POS_WORDS + _NEG_WORDS + _OTHER_SENTIMENT)

    def _label(text: str) -> str:
        pos, neg = bool(pos_re.search(text)), bool(neg_re.search(text))
        assert not (pos and neg), text
        return "positive" if pos else "negative" if neg else "neutral"

    def _first_two_share(texts: list[str]) -> tuple[float, str]:
        counts: dict[str, int] = {}
        for t in texts:
            key = " ".join(t.lower().split()[:2])
            counts[key] = counts.get(key, 0) + 1
        key = max(sorted(counts), key=counts.get)
        return counts[key] / len(texts), key

    sent, food = sentiment_texts(), food_texts()
    assert sent == sentiment_texts() and food == food_texts(), "not deterministic"
    assert list(sent) == ["positive", "negative", "neutral"] and list(food) == ["food", "other"]
    built = _build()
    training = [t for group in (sent, food) for texts in group.values() for t in texts]
    for group_name, group in (("sentiment", sent), ("food", food)):
        for cls, texts in group.items():
            share, key = _first_two_share(texts)
            lengths = [len(t.split()) for t in texts]
            print(f"{group_name}/{cls}: {len(texts)} sentences, {min(lengths)}-{max(lengths)} words "
                  f"(mean {sum(lengths) / len(lengths):.1f}), top first two words {key!r} {share:.1%}")
            for t in texts[:5]:
                print("   ", t)
            assert len(texts) >= 300, (cls, len(texts))
            assert len(set(texts)) == len(texts), cls
            assert all(_MIN_WORDS <= n <= _MAX_WORDS for n in lengths), cls
            assert all(1 <= len(re.findall(r"[.!?](?:\s|$)", t)) <= 2 for t in texts), cls
            assert share <= 0.15, (cls, key, share)
            assert len({i for _, _, i in built[group_name][cls]}) >= 12, cls
        every = [t.lower() for texts in group.values() for t in texts]
        assert len(set(every)) == len(every), f"{group_name}: a sentence is in two classes"

    for cls, texts in sent.items():
        assert all(_label(t) == cls for t in texts), [t for t in texts if _label(t) != cls][:3]
        assert not any(food_re.search(t) for t in texts), [t for t in texts if food_re.search(t)][:3]
    assert all(food_re.search(t) for t in food["food"]), [t for t in food["food"] if not food_re.search(t)]
    assert not any(food_re.search(t) for t in food["other"]), [t for t in food["other"] if food_re.search(t)]
    for cls, rows in built["food"].items():
        assert all(_label(t) == label for t, label, _ in rows), cls
        shares = {label: sum(r[1] == label for r in rows) / len(rows) for label in ("positive", "negative")}
        assert all(0.3 <= v <= 0.37 for v in shares.values()), (cls, shares)
    mean = {cls: sum(len(t.split()) for t in texts) / len(texts) for cls, texts in food.items()}
    assert abs(mean["food"] - mean["other"]) < 2.0, mean
    assert not set(map(str.lower, food["other"])) & set(t.lower() for texts in sent.values() for t in texts)

    lowered = [t.lower() for t in training]
    for name, prompts, minimum in (("PROMPTS_NEUTRAL", PROMPTS_NEUTRAL, 48),
                                   ("PROMPTS_POSITIVE", PROMPTS_POSITIVE, 32),
                                   ("PROMPTS_FOOD", PROMPTS_FOOD, 32)):
        print(f"{name}: {len(prompts)} prompts, e.g. {prompts[0]!r}")
        assert len(prompts) >= minimum and len(set(prompts)) == len(prompts), name
        assert all(5 <= len(p.split()) <= 14 for p in prompts), [p for p in prompts if len(p.split()) > 14]
        assert all(len(p.split()) >= 5 for p in prompts), [p for p in prompts if len(p.split()) < 5]
        assert all(p[-1].isalpha() for p in prompts), name  # ends mid-sentence
        leaked = [p for p in prompts if any(p.lower() in t for t in lowered)]
        assert not leaked, leaked
    assert not any(any_sentiment_re.search(p) for p in PROMPTS_NEUTRAL), \
        [p for p in PROMPTS_NEUTRAL if any_sentiment_re.search(p)]
    assert not any(food_re.search(p) for p in PROMPTS_NEUTRAL + PROMPTS_POSITIVE), \
        [p for p in PROMPTS_NEUTRAL + PROMPTS_POSITIVE if food_re.search(p)]
    assert all(any_sentiment_re.search(p) and not neg_re.search(p) for p in PROMPTS_POSITIVE), \
        [p for p in PROMPTS_POSITIVE if not any_sentiment_re.search(p) or neg_re.search(p)]
    assert all(food_re.search(p) for p in PROMPTS_FOOD), [p for p in PROMPTS_FOOD if not food_re.search(p)]
    assert not any(any_sentiment_re.search(p) for p in PROMPTS_FOOD), \
        [p for p in PROMPTS_FOOD if any_sentiment_re.search(p)]
    print("all checks passed")
